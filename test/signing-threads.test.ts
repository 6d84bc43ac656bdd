import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { HsmError, Pkcs11Probes, SigningThreads, openSiteKeyStore, readPin, type Pkcs11KeyStore } from '@fleetpki/hsm';
import { ensureSites } from './support/sites.js';

let config: FleetConfig;
let store: Pkcs11KeyStore;
let spki: Buffer;
const label = `threads-${randomBytes(4).toString('hex')}`;

before(async () => {
  config = await ensureSites();
  // The key store logs this process in; the threads attach to that login.
  store = await openSiteKeyStore(config, config.sites.a, { sessions: 1, signingThreads: 0 });
  spki = (await store.generateSigningKey(label)).publicKeySpki;
});

after(async () => {
  await store.close();
});

function threads(count: number, every = 1): Promise<SigningThreads> {
  const site = config.sites.a;
  return SigningThreads.start({ modulePath: config.pkcs11Module, tokenLabel: site.hsmTokenLabel, pin: readPin(`file:${site.hsmPinFile}`), check: { every } }, count);
}

function verifies(data: Buffer, signature: Buffer): boolean {
  return verify('sha256', data, createPublicKey({ key: spki, format: 'der', type: 'spki' }), signature);
}

describe('signing threads', () => {
  it('sign slices off the main thread: 1,000 signatures asked at once all verify, each for its own data', async () => {
    const pool = await threads(2);
    try {
      const signer = pool.signer({ label }, spki);
      const data = Array.from({ length: 1000 }, (_, i) => Buffer.from(`tbs ${i} ${randomBytes(8).toString('hex')}`));
      const signatures = await Promise.all(data.map((d) => signer.sign(d)));
      assert.equal(signatures.filter((s, i) => verifies(data[i]!, s)).length, 1000);
      // Signatures are bound to their data, not shifted within a slice.
      assert.equal(verifies(data[1]!, signatures[0]!), false);
    } finally {
      await pool.close();
    }
  });

  it('a thread killed mid-slice loses nothing and answers nothing twice: its slices are signed by another thread', { timeout: 120_000 }, async () => {
    const pool = await threads(2);
    try {
      const signer = pool.signer({ label }, spki);
      await signer.sign(Buffer.from('warm-up'));
      const data = Array.from({ length: 3000 }, (_, i) => Buffer.from(`kill ${i}`));
      let settled = 0;
      const answers = data.map((d) =>
        signer.sign(d).finally(() => {
          settled++;
        }),
      );
      while (settled < 200) await new Promise((r) => setTimeout(r, 1));
      assert.ok(settled < data.length, 'the thread is killed while slices are in flight');
      await pool.terminateThreadForFaultInjection(0);
      const signatures = await Promise.all(answers);
      assert.equal(signatures.filter((s, i) => verifies(data[i]!, s)).length, data.length, 'every signature came back and verifies');
      assert.equal(settled, data.length);
      assert.equal(pool.threadCount, 2, 'a new thread took the place of the one killed');
    } finally {
      await pool.close();
    }
  });

  it('a token logged out underneath the threads (logins are per process): they log in again and the next signatures succeed', async () => {
    const pool = await threads(2);
    try {
      const signer = pool.signer({ label }, spki);
      const data = Array.from({ length: 200 }, (_, i) => Buffer.from(`logout ${i}`));
      await Promise.all(data.map((d) => signer.sign(d)));
      new Pkcs11Probes(store).logoutUnderneath();
      const signatures = await Promise.all(data.map((d) => signer.sign(d)));
      assert.equal(signatures.filter((s, i) => verifies(data[i]!, s)).length, data.length);
    } finally {
      await pool.close();
    }
  });

  it('a signature that does not verify with the key is refused, never returned (HSM_SIGNATURE_INVALID)', async () => {
    const pool = await threads(1);
    try {
      // A public key that is not the signing key's: every check fails, as it would for a faulty HSM.
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
      const signer = pool.signer({ label }, other);
      await assert.rejects(signer.sign(Buffer.from('x')), (err: unknown) => err instanceof HsmError && err.code === 'HSM_SIGNATURE_INVALID');
    } finally {
      await pool.close();
    }
  });

  it('a key the token does not hold is named in the error', async () => {
    const pool = await threads(1);
    try {
      await assert.rejects(pool.signer({ label: 'no-such-key' }, spki).sign(Buffer.from('x')), (err: unknown) => err instanceof HsmError && err.code === 'HSM_KEY_NOT_FOUND' && /no-such-key/.test(err.message));
    } finally {
      await pool.close();
    }
  });

  it('the key store signs through its threads when configured to', async () => {
    const threaded = await openSiteKeyStore(config, config.sites.a, { sessions: 1, signingThreads: 2 });
    try {
      const signer = await threaded.getSigner(label);
      const data = randomBytes(200);
      assert.ok(verifies(data, await signer.sign(data)));
    } finally {
      await threaded.close();
    }
  });
});
