import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isFleetError } from '@fleetpki/core';
import { generateDeviceKeys } from './device-keys.js';
import { PossessionThreads, checkCsr, inlinePossessionVerifier } from './possession-threads.js';

/** A copy of the CSR with one bit of its signature flipped (the last byte is inside s). */
function tampered(csr: Buffer): Buffer {
  const copy = Buffer.from(csr);
  copy[copy.length - 1]! ^= 0x01;
  return copy;
}

describe('proof-of-possession checks on threads', { timeout: 60_000 }, () => {
  const threads = PossessionThreads.start(2) as PossessionThreads;
  after(() => threads.close());
  const keys = generateDeviceKeys(300);

  it('prove each CSR key and refuse tampered signatures, as the inline check does', async () => {
    const results = await Promise.all(keys.map((k, i) => checkCsr(i % 3 === 0 ? tampered(k.csr) : k.csr, threads).then((key) => key.spki, (err: unknown) => err)));
    results.forEach((result, i) => {
      if (i % 3 === 0) assert.ok(isFleetError(result, 'CSR_SIGNATURE_INVALID'), `CSR ${i}: ${String(result)}`);
      else assert.ok(Buffer.isBuffer(result) && result.equals(keys[i]!.publicKeySpki), `CSR ${i} proves its own key`);
    });
    // The same verdicts inline.
    for (const [i, k] of keys.slice(0, 6).entries()) {
      await (i % 3 === 0 ? assert.rejects(checkCsr(tampered(k.csr), inlinePossessionVerifier), (err: unknown) => isFleetError(err, 'CSR_SIGNATURE_INVALID')) : checkCsr(k.csr, inlinePossessionVerifier));
    }
  });

  it('lose no check when a thread dies with checks in flight; a new thread takes its place', async () => {
    const pending = keys.flatMap((k) => [checkCsr(k.csr, threads), checkCsr(tampered(k.csr), threads).then(() => 'accepted', () => 'refused')]);
    // The checks go out after this turn; end a thread once they are on their way.
    await new Promise((resolve) => setImmediate(resolve));
    await threads.terminateThreadForFaultInjection(0);
    const results = await Promise.all(pending);
    results.forEach((result, i) => (i % 2 === 0 ? assert.ok((result as { spki: Buffer }).spki.equals(keys[i / 2]!.publicKeySpki)) : assert.equal(result, 'refused')));
    assert.equal(threads.threadCount, 2);
  });

  it('answer what is still pending when closed, and refuse new checks', async () => {
    const pool = PossessionThreads.start(1) as PossessionThreads;
    const pending = keys.slice(0, 50).map((k) => checkCsr(k.csr, pool));
    await pool.close();
    assert.equal((await Promise.all(pending)).length, 50);
    await assert.rejects(checkCsr(keys[0]!.csr, pool), (err: unknown) => isFleetError(err, 'POSSESSION_CHECKS_CLOSED'));
  });
});
