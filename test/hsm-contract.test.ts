import assert from 'node:assert/strict';
import { randomBytes, createPublicKey, verify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { HsmError, Pkcs11KeyStore, Pkcs11Probes, hsmSelfTest, openSiteKeyStore, readPin, type KeyStore } from '@fleetpki/hsm';
import { ensureSites } from './support/sites.js';

let config: FleetConfig;
before(async () => {
  config = await ensureSites();
});

function isHsmError(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof HsmError, `expected HsmError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

// These run first, before this process has logged in: once one login succeeded, PKCS#11 reports
// "already logged in" for the whole application and a wrong PIN would no longer be checked.
describe('PKCS#11 configuration errors', () => {
  it('names the module path when the module is missing', async () => {
    await assert.rejects(Pkcs11KeyStore.open({ modulePath: '/nonexistent/libpkcs11.so', tokenLabel: 'x', pin: '1234' }), (err: Error) => {
      isHsmError('HSM_MODULE_NOT_FOUND')(err);
      assert.match(err.message, /\/nonexistent\/libpkcs11\.so/);
      return true;
    });
  });

  it('lists the tokens present when the token is missing', async () => {
    const site = config.sites.a;
    await assert.rejects(
      Pkcs11KeyStore.open({ modulePath: config.pkcs11Module, tokenLabel: 'no-such-token', pin: '1234', softhsmConf: site.softhsmConf }),
      (err: Error) => {
        isHsmError('HSM_TOKEN_NOT_FOUND')(err);
        assert.ok(err.message.includes(config.sites.a.hsmTokenLabel), err.message);
        return true;
      },
    );
  });

  it('refuses a wrong PIN without echoing it', async () => {
    const site = config.sites.a;
    await assert.rejects(
      Pkcs11KeyStore.open({ modulePath: config.pkcs11Module, tokenLabel: site.hsmTokenLabel, pin: 'wrong-pin-123', softhsmConf: site.softhsmConf }),
      (err: Error) => {
        isHsmError('HSM_PIN_INCORRECT')(err);
        assert.doesNotMatch(err.message, /wrong-pin-123/);
        return true;
      },
    );
  });

  it('reports a missing PIN file', () => {
    assert.throws(() => readPin('file:/nonexistent/pin'), isHsmError('HSM_PIN_MISSING'));
  });
});

/** The contract every KeyStore backend must meet (STYLE.md: one suite against every backend). */
function keyStoreContract(name: string, open: () => Promise<KeyStore & { destroyKey?(label: string): Promise<number>; tryReadPrivateValue?(label: string): Promise<Buffer> }>) {
  describe(`KeyStore contract: ${name}`, () => {
    let store: Awaited<ReturnType<typeof open>>;
    const label = `contract-${randomBytes(4).toString('hex')}`;
    before(async () => {
      store = await open();
    });
    // No clean-up of the key: it is not destroyable (the last case), and the run's test token goes with it.
    after(async () => {
      await store.close();
    });

    it('generates a sensitive P-256 key whose signatures node:crypto verifies', async () => {
      const info = await store.generateSigningKey(label, { cloneable: true });
      assert.equal(info.sensitive, true);
      assert.equal(info.extractable, true);
      const signer = await store.getSigner(label);
      assert.deepEqual(signer.publicKeySpki, info.publicKeySpki);
      const publicKey = createPublicKey({ key: signer.publicKeySpki, format: 'der', type: 'spki' });
      assert.equal(publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      const messages = Array.from({ length: 32 }, () => randomBytes(100));
      const signatures = await Promise.all(messages.map((m) => signer.sign(m)));
      messages.forEach((m, i) => assert.equal(verify('sha256', m, publicKey, signatures[i]!), true, `signature ${i}`));
      assert.equal(verify('sha256', randomBytes(100), publicKey, signatures[0]!), false);
    });

    it('never reveals the private key value', async () => {
      assert.ok(store.tryReadPrivateValue, 'backend must expose the probe used by this test');
      await assert.rejects(store.tryReadPrivateValue(label), /sensitive/);
    });

    it('refuses a second key with the same label, and names a missing key', async () => {
      await assert.rejects(store.generateSigningKey(label), isHsmError('HSM_KEY_EXISTS'));
      await assert.rejects(store.getSigner(`${label}-missing`), isHsmError('HSM_KEY_NOT_FOUND'));
      assert.equal(await store.hasKey(`${label}-missing`), false);
    });

    it('refuses to destroy a key it generated, whoever holds the PIN, and leaves it whole', async () => {
      assert.ok(store.destroyKey, 'backend must expose destroyKey for this test');
      await assert.rejects(store.destroyKey(label), isHsmError('HSM_KEY_NOT_DESTROYABLE'));
      assert.equal(await store.hasKey(label), true);
      const signer = await store.getSigner(label);
      const message = randomBytes(40);
      assert.equal(verify('sha256', message, createPublicKey({ key: signer.publicKeySpki, format: 'der', type: 'spki' }), await signer.sign(message)), true, 'it still signs (its public half stayed)');
    });
  });
}

keyStoreContract('SoftHSM2 via PKCS#11', () => openSiteKeyStore(config));

describe('HSM self-test', () => {
  it('signs, verifies and finds the key sensitive', async () => {
    const store = await openSiteKeyStore(config);
    try {
      const result = await hsmSelfTest(store, 'self-test', 10);
      assert.equal(result.signatureVerified, true);
      assert.equal(result.privateKeySensitive, true);
      assert.ok(result.signaturesPerSecond > 0);
    } finally {
      await store.close();
    }
  });
});

describe('PKCS#11 faults under the session pool', () => {
  it('a session closed underneath the pool, then a token logout: the next signatures succeed', async () => {
    // The pool's own signing path (no signing threads; test/signing-threads.test.ts covers theirs).
    const store = await openSiteKeyStore(config, config.sites.a, { sessions: 2, signingThreads: 0 });
    try {
      const label = `fault-${randomBytes(3).toString('hex')}`;
      await store.generateSigningKey(label);
      const signer = await store.getSigner(label);
      const publicKey = createPublicKey({ key: signer.publicKeySpki, format: 'der', type: 'spki' });
      const signsTen = async () => {
        const messages = Array.from({ length: 10 }, () => randomBytes(40));
        const signatures = await Promise.all(messages.map((m) => signer.sign(m)));
        messages.forEach((m, i) => assert.equal(verify('sha256', m, publicKey, signatures[i]!), true));
      };
      await signsTen();
      const probes = new Pkcs11Probes(store);
      assert.equal(probes.closeSessionsUnderneath(), 2, 'both sessions closed behind the pool');
      await signsTen();
      probes.logoutUnderneath();
      await signsTen();
      assert.equal(await store.hasKey(label), true, 'lookups work again too');
    } finally {
      await store.close();
    }
  });
});
