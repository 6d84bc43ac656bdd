import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as graphene from 'graphene-pk11';
import { HsmProcess } from './hsm-process.js';
import { loadModule, releaseModule, findSlot } from './pkcs11-module.js';
import { collect } from './pkcs11-objects.js';

/**
 * Review of issue 33 §1 (branch review-1), against a SoftHSM token of its own in a temporary folder
 * (never a site's): what a holder of the token's user PIN can leave on the token, and what the
 * ceremony's and `hsm check`'s code then do.
 *
 * 1. A private trusted key (a user's private copy of a trusted key the SO once made, e.g. a KEK left by a
 *    ceremony before issue 33, or one an SO planted): `custody create` is to refuse beside a trusted key
 *    (README "Key protection"), but custody-wrap.ts looks for trusted keys while logged in as the SO, who
 *    cannot see private objects. The user's own session (what `hsm check` and /readyz use) sees it.
 * 2. `hsm check` changes the keys it probes: Pkcs11Probes.modifyKey sets CKA_DERIVE on a private key
 *    (CKA_ENCRYPT on a secret key) and leaves it set when the token allows it (keys made before issue 33,
 *    a trusted key), although the probes say "leaves nothing behind" and checkKeyProtection "Nothing is
 *    changed".
 */
const MODULE = process.env.FLEETPKI_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
const TOKEN = `review-${randomBytes(3).toString('hex')}`;
const SO_PIN = randomBytes(8).toString('hex');
const USER_PIN = randomBytes(8).toString('hex');
let dir: string;
let conf: string;
let session: graphene.Session;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fleetpki-review-hsm-'));
  mkdirSync(join(dir, 'tokens'));
  conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const admin = await HsmProcess.start({ modulePath: MODULE, softhsmConf: conf });
  try {
    await admin.call('initToken', TOKEN, SO_PIN, USER_PIN);
  } finally {
    await admin.close();
  }
  // This process is "the attacker": a PKCS#11 application logged in with the user PIN only.
  const module = loadModule(MODULE, conf);
  session = findSlot(module, TOKEN, MODULE).open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
  session.login(USER_PIN, graphene.UserType.USER);
});

after(() => {
  try {
    session?.logout();
    session?.close();
  } finally {
    releaseModule(MODULE);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A CA-like key as fleetpki makes them now (cloneable, wrap-with-trusted, not copyable or modifiable). */
async function caKey(label: string): Promise<{ label: string; id: Buffer }> {
  const hsm = await HsmProcess.start({ modulePath: MODULE, softhsmConf: conf });
  try {
    await hsm.call('openKeyStore', TOKEN, USER_PIN, 1);
    const info = await hsm.call('generateSigningKey', label, { cloneable: true });
    return { label, id: Buffer.from(info.id) };
  } finally {
    await hsm.close();
  }
}

async function plantLegacyTrustedKek(label: string): Promise<void> {
  const so = await HsmProcess.start({ modulePath: MODULE, softhsmConf: conf });
  try {
    await so.call('probePlantLegacyTrustedKek', TOKEN, SO_PIN, label);
  } finally {
    await so.close();
  }
}

describe('review: trusted keys a user-PIN holder can keep on the token', () => {
  it('custody create refuses beside a trusted key, also one the user made private (the SO cannot see it)', async () => {
    await plantLegacyTrustedKek('legacy-kek');
    // The user PIN holder keeps a private copy (CKA_TRUSTED survives C_CopyObject) and removes the public original.
    const [legacy] = collect(session.find({ class: graphene.ObjectClass.SECRET_KEY, label: 'legacy-kek' }));
    const hidden = session.copy(legacy!, { token: true, private: true, label: 'hidden-kek' });
    legacy!.destroy();
    assert.equal(hidden.getAttribute({ trusted: null }).trusted, true, 'the private copy is trusted');

    // What /readyz and `hsm check` use (a user session): they see it.
    const user = await HsmProcess.start({ modulePath: MODULE, softhsmConf: conf });
    try {
      await user.call('openKeyStore', TOKEN, USER_PIN, 1);
      assert.deepEqual((await user.call('listTrustedKeys')).map((k) => k.label), ['hidden-kek']);
    } finally {
      await user.close();
    }

    const key = await caKey('review-ca');
    const ceremony = await HsmProcess.start({ modulePath: MODULE, softhsmConf: conf });
    let outcome: string;
    try {
      await ceremony.call('wrapForCustody', { tokenLabel: TOKEN, soPin: SO_PIN, userPin: USER_PIN, kek: randomBytes(32), privateKeys: [key], secretKeys: [] });
      outcome = 'wrapped';
    } catch (err) {
      outcome = `${(err as { code?: string }).code}: ${(err as Error).message}`;
    } finally {
      await ceremony.close();
      hidden.destroy();
    }
    assert.match(outcome, /HSM_TRUSTED_KEY_PRESENT/, `custody create went ahead beside the trusted key "hidden-kek" (${outcome})`);
  });

  it("hsm check's probes leave the keys they probe as they found them", async () => {
    const probe = await HsmProcess.start({ modulePath: MODULE, softhsmConf: conf });
    try {
      await probe.call('openKeyStore', TOKEN, USER_PIN, 1);
      const { id } = await probe.call('probeGenerateLegacySigningKey', 'review-legacy');
      const ref = { label: 'review-legacy', id: Buffer.from(id) };
      const find = () => collect(session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label: 'review-legacy' }))[0]!;
      assert.equal(find().getAttribute({ derive: null }).derive, false, 'made without CKA_DERIVE');
      // Exactly what checkKeyProtection runs for every key (packages/sites key-protection-check.ts).
      const modified = await probe.call('probeModify', ref, 'private');
      assert.equal(modified.refused, false, 'a key made before issue 33 is modifiable (hsm check notes it)');
      assert.equal(find().getAttribute({ derive: null }).derive, false, 'hsm check left CKA_DERIVE switched on: the issuing key can now be used for ECDH by any PIN holder');
    } finally {
      await probe.close();
    }
  });

  it('a user-PIN holder cannot destroy a CA key (CKA_DESTROYABLE is left at its default, true)', async () => {
    const key = await caKey('review-ca-destroy');
    const [found] = collect(session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label: key.label, id: key.id }));
    assert.ok(found, 'the CA key is there');
    const outcome = (() => {
      try {
        found.destroy();
        return 'destroyed';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    assert.notEqual(outcome, 'destroyed', 'C_DestroyObject of a CA key made with PRIVATE_KEY_PROTECTION succeeded with the user PIN alone');
  });
});
