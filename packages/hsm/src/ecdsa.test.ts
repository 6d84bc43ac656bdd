import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { ecdsaRawToDer, p256SpkiFromPoint, unwrapEcPoint } from './ecdsa.js';
import { SessionPool } from './session-pool.js';

describe('ECDSA encoding', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  it('converts r||s to a DER signature that node:crypto verifies (incl. high-bit and short r/s)', () => {
    let sawPadding = false;
    for (let i = 0; i < 300; i++) {
      const message = randomBytes(32);
      const raw = sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = ecdsaRawToDer(raw);
      if (der[3] === 33) sawPadding = true;
      assert.equal(verify('sha256', message, publicKey, der), true);
    }
    assert.ok(sawPadding, 'expected some r with its high bit set in 300 signatures');
    // r with leading zero bytes must be trimmed to a minimal INTEGER
    const raw = Buffer.concat([Buffer.alloc(31), Buffer.from([5]), Buffer.alloc(31), Buffer.from([0x80])]);
    assert.equal(ecdsaRawToDer(raw).toString('hex'), '3007020105020200' + '80');
  });

  it('builds the SPKI from the CKA_EC_POINT value', () => {
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const point = spki.subarray(spki.length - 65);
    const wrapped = Buffer.concat([Buffer.from([0x04, 65]), point]);
    assert.deepEqual(p256SpkiFromPoint(unwrapEcPoint(wrapped)), spki);
    assert.deepEqual(p256SpkiFromPoint(unwrapEcPoint(point)), spki);
    assert.throws(() => p256SpkiFromPoint(Buffer.alloc(33)), /65-byte/);
  });
});

describe('SessionPool', () => {
  it('never lends one session to two callers at once, and serves waiters in order', async () => {
    const pool = new SessionPool(['s1', 's2']);
    const busy = new Set<string>();
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        pool.use(async (s) => {
          assert.equal(busy.has(s), false);
          busy.add(s);
          order.push(i);
          await new Promise((r) => setTimeout(r, 5));
          busy.delete(s);
        }),
      ),
    );
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
