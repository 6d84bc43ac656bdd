import assert from 'node:assert/strict';
import { createDecipheriv, createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CA_IDS, DeviceKeyService, ensureAuditKey } from '@fleetpki/ca';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import type { Pkcs11KeyStore} from '@fleetpki/hsm';
import { HsmProcess, Pkcs11Probes, openSiteKeyStore, parsePkcs11Uri, readPin, type KeyRef } from '@fleetpki/hsm';
import { checkKeyProtection, custodianPinFiles, dropDeployment, hardenSiteKeys, listTokensOf, migrateRootToken, siteSoPinFile, startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { listCas, listMasterKeys, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * Issue 15's attack, performed as someone holding only the services' user PIN would: an AES key of
 * their own choosing, the HSM asked to wrap a CA key under it with CKM_AES_KEY_WRAP_PAD, the blob
 * unwrapped with node:crypto's id-aes256-wrap-pad. It works against a key made the old way (shown
 * first, so this test can fail); it must be refused for every key fleetpki makes now.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let site: Pkcs11KeyStore;
let probes: Pkcs11Probes;
const keys: { ref: KeyRef; keyClass: 'private' | 'secret'; what: string }[] = [];

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  site = await openSiteKeyStore(config, config.sites.a, { sessions: 2 });
  probes = new Pkcs11Probes(site);
  const devices = new DeviceKeyService(pool, site, 'a');
  for (const role of ['mac', 'enc'] as const) if (!(await listMasterKeys(pool)).some((m) => m.role === role)) await devices.createMasterKey(role, 'test');
  await ensureAuditKey(pool, site, 'a', 'test');
  for (const ca of await listCas(pool)) {
    const uri = parsePkcs11Uri(ca.keyUri);
    // A revoked CA's key may be gone (custody does not carry it through a rebuild: disaster-drill.test.ts).
    if (ca.kind !== 'root' && ca.status !== 'revoked') keys.push({ ref: { label: uri.object, id: uri.id! }, keyClass: 'private', what: `CA key ${ca.id}` });
  }
  for (const m of await listMasterKeys(pool)) keys.push({ ref: { label: m.keyLabel, id: m.keyObjectId! }, keyClass: 'secret', what: `master key ${m.keyLabel}` });
  keys.push({ ref: { label: 'audit-a' }, keyClass: 'private', what: 'audit key audit-a' });
});

after(async () => {
  await site?.close();
  await pool?.end();
});

/** Length of the DER element at the start of `der` (short or long form), header included. */
function derLength(der: Buffer): number {
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  return 2 + n + der.subarray(2, 2 + n).reduce((len, b) => len * 256 + b, 0);
}

/** RFC 5649 unwrap as the attacker would do it, outside any HSM. */
function unwrapPad(kek: Buffer, wrapped: Buffer): Buffer {
  const decipher = createDecipheriv('id-aes256-wrap-pad', kek, Buffer.from('a65959a6', 'hex'));
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

describe('CA and master keys that no PIN holder can take out of the HSM', () => {
  it('the attack works against a key made the old way: its PKCS#8 comes out and signs outside the HSM', async () => {
    const label = `legacy-${randomBytes(3).toString('hex')}`;
    const { id } = probes.generateLegacySigningKey(label);
    const info = await site.describeKey({ label, id });
    const outcome = probes.wrapUnderOwnKey({ label, id }, 'private');
    assert.equal(outcome.refused, false, 'the old key template let the user wrap it under their own key');
    if (outcome.refused) return;
    const pkcs8 = unwrapPad(outcome.attackerKey, outcome.wrapped);
    // SoftHSM pads short material before wrapping (infra/README.md); the DER inside is the key.
    const privateKey = createPrivateKey({ key: pkcs8.subarray(0, derLength(pkcs8)), format: 'der', type: 'pkcs8' });
    assert.deepEqual(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }), info.publicKeySpki, 'the extracted key is the HSM key');
    const message = randomBytes(32);
    assert.equal(verify('sha256', message, createPublicKey({ key: info.publicKeySpki, format: 'der', type: 'spki' }), sign('sha256', message, privateKey)), true, 'it signs outside the HSM');
    await site.destroyKey(label);
  });

  it('wrap under a key of the attacker\'s choosing is refused for every CA key, master key and audit key', async () => {
    assert.ok(keys.length >= 5, `keys under test: ${keys.map((k) => k.what).join(', ')}`);
    for (const key of keys) {
      const outcome = probes.wrapUnderOwnKey(key.ref, key.keyClass);
      assert.equal(outcome.refused, true, `${key.what} was wrapped under the attacker's key`);
      assert.match(outcome.refused ? outcome.reason : '', /CKR_KEY_NOT_WRAPPABLE|CKR_KEY_UNEXTRACTABLE/, key.what);
    }
  });

  it('the root key is refused too, in its own HSM', async () => {
    const root = await listCas(pool).then((cas) => parsePkcs11Uri(cas.find((c) => c.id === CA_IDS.root)!.keyUri));
    const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: config.rootHsm.softhsmConf });
    try {
      await hsm.call('openKeyStore', config.rootTokenLabel, readPin(`file:${custodianPinFiles(config).rootPin}`), 1);
      // The root leaves its token only wrapped under a trusted key (its custody ceremony): a key of the
      // PIN holder's own is refused, and the trusted-only flag cannot be switched off.
      const outcome = await hsm.call('probeWrapUnderOwnKey', { label: root.object, id: root.id! }, 'private');
      assert.deepEqual([outcome.refused, outcome.reason], [true, 'CKR_KEY_NOT_WRAPPABLE']);
      const weakened = await hsm.call('probeWeaken', { label: root.object, id: root.id! }, 'private', { wrapWithTrusted: false });
      assert.equal(weakened.refused, true);
    } finally {
      await hsm.close();
    }
  });

  it('a user cannot make a key of their own trusted, nor switch a key\'s protection back', () => {
    assert.equal(probes.createTrustedKey().refused, true, 'C_CreateObject with CKA_TRUSTED as the user');
    assert.equal(probes.markOwnKeyTrusted().refused, true, 'C_SetAttributeValue CKA_TRUSTED as the user');
    for (const key of keys) {
      assert.equal(probes.weakenKey(key.ref, key.keyClass, { wrapWithTrusted: false }).refused, true, `${key.what}: CKA_WRAP_WITH_TRUSTED off`);
    }
    const audit = keys.find((k) => k.what.startsWith('audit'))!;
    assert.equal(probes.weakenKey(audit.ref, 'private', { extractable: true }).refused, true, 'audit key: CKA_EXTRACTABLE on');
  });

  it('two keys with one label are an error that names both, never "take the first"', async () => {
    const label = `twin-${randomBytes(3).toString('hex')}`;
    const first = probes.generateLegacySigningKey(label);
    const second = probes.generateLegacySigningKey(label);
    try {
      await assert.rejects(site.getSigner(label), (err: Error & { code?: string }) => err.code === 'HSM_KEY_AMBIGUOUS' && err.message.includes(first.id.toString('hex')) && err.message.includes(second.id.toString('hex')));
      await assert.rejects(site.describeKey({ label, id: first.id }), { code: 'HSM_KEY_AMBIGUOUS' });
    } finally {
      await site.destroyKey(label);
    }
  });

  it('the root token cannot be opened with the site\'s user PIN, and the site HSM does not even list it', async () => {
    assert.ok(!(await listTokensOf(config.sites.a.softhsmConf)).includes(config.rootTokenLabel));
    assert.ok((await listTokensOf(config.rootHsm.softhsmConf)).includes(config.rootTokenLabel));
    const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: config.rootHsm.softhsmConf });
    try {
      await assert.rejects(hsm.call('openKeyStore', config.rootTokenLabel, readPin(`file:${config.sites.a.hsmPinFile}`), 1), { code: 'HSM_PIN_INCORRECT' });
    } finally {
      await hsm.close();
    }
  });

  it('the issuer API, the status responder and a batch worker get no root PIN, SO PIN or custodian file', async () => {
    const secrets = [readPin(`file:${custodianPinFiles(config).rootPin}`), readPin(`file:${siteSoPinFile(config, config.sites.a)}`)];
    const ports = { FLEETPKI_API_PORT_A: String(config.sites.a.apiPort + 300), FLEETPKI_STATUS_PORT_A: String(config.sites.a.statusPort + 300), FLEETPKI_CRL_BASE_URL: config.crlBaseUrl };
    const services = [startService(config, 'issuer-api', ports), startService(config, 'status-responder', ports), startService(config, 'batch-worker', ports)];
    try {
      await waitForHttp(`${localUrl(config, 'api', ports.FLEETPKI_API_PORT_A)}/readyz`);
      await waitForHttp(`${localUrl(config, 'status', ports.FLEETPKI_STATUS_PORT_A)}/healthz`);
      await new Promise((r) => setTimeout(r, 1_000));
      for (const child of services) {
        const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8');
        for (const secret of secrets) assert.ok(!environ.includes(secret), `a custodian PIN is in the environment of ${child.spawnargs.join(' ')}`);
        assert.doesNotMatch(environ, /custodians|root-hsm|SO_PIN|ROOT_PIN/, 'no variable names a custodian file or the root HSM');
        const open = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
          try {
            return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
          } catch {
            return '';
          }
        });
        assert.deepEqual(open.filter((f) => f.includes('/custodians/') || f.includes('/root-hsm/')), [], 'no open file of the custodians or of the root HSM');
        assert.ok(!(await listTokensOf(config.sites.a.softhsmConf)).includes(config.rootTokenLabel), 'the HSM the services use has no root token');
      }
    } finally {
      await Promise.all(services.map(stopProcess));
    }
  });
});

describe('migrating an installation made before the trusted-wrap rule', () => {
  it('hsm check reports a key that can be wrapped under any key; harden makes it non-extractable in place', async () => {
    const label = `legacy-${randomBytes(3).toString('hex')}`;
    const { id } = probes.generateLegacySigningKey(label);
    try {
      const before = await checkKeyProtection(config);
      const weak = before.findings.find((f) => f.label === label)!;
      assert.equal(before.ok, false);
      assert.equal(weak.probe, 'WRAPPED');
      assert.ok(weak.problems.some((p) => /CKA_WRAP_WITH_TRUSTED off/.test(p)));
      const report = await hardenSiteKeys(config);
      assert.deepEqual(report.restricted.map((r) => r.label), [label]);
      const after = await checkKeyProtection(config);
      const fixed = after.findings.find((f) => f.label === label)!;
      assert.deepEqual(fixed.problems, []);
      assert.match(fixed.probe, /^refused: CKR_KEY_UNEXTRACTABLE/);
      assert.ok(fixed.warnings.some((w) => /rotate/.test(w)), 'it says the key may have been copied before');
      assert.equal(probes.wrapUnderOwnKey({ label, id }, 'private').refused, true);
    } finally {
      await site.destroyKey(label);
    }
  });

  it("migrate-root moves a root token out of site A's HSM and gives it PINs of its own", async () => {
    // An old layout: the root token in site A's HSM with site A's PINs, its key wrappable under any key.
    const old = loadConfig({ ...process.env, FLEETPKI_SITE: 'a', FLEETPKI_HSM_TOKEN_PREFIX: `${config.hsmTokenPrefix}0` });
    const sitePin = readPin(`file:${config.sites.a.hsmPinFile}`);
    const soPin = readPin(`file:${siteSoPinFile(config, config.sites.a)}`);
    // In a process of its own: this one's SoftHSM listed its tokens before this one existed.
    const init = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: config.sites.a.softhsmConf });
    try {
      await init.call('initToken', old.rootTokenLabel, soPin, sitePin);
      await init.call('openKeyStore', old.rootTokenLabel, sitePin, 1);
      await init.call('probeGenerateLegacySigningKey', 'root');
    } finally {
      await init.close();
    }
    // The old code kept the SO PIN beside the services' PIN; the migration reads it from there.
    mkdirSync(custodianPinFiles(old).dir, { recursive: true });
    writeFileSync(custodianPinFiles(old).soPin(old.sites.a), soPin);
    try {
      const before = await checkKeyProtection(old);
      assert.ok(before.layout.some((l) => /inside site a's HSM/.test(l)), before.layout.join('\n'));
      assert.equal(await migrateRootToken(old), 'moved');
      assert.ok(!(await listTokensOf(config.sites.a.softhsmConf)).includes(old.rootTokenLabel), 'gone from site A');
      assert.ok((await listTokensOf(config.rootHsm.softhsmConf)).includes(old.rootTokenLabel), 'in the root HSM');
      const after = await checkKeyProtection(old, { rootPin: readPin(`file:${custodianPinFiles(old).rootPin}`) });
      const root = after.findings.find((f) => f.hsm === 'offline root' && f.label === 'root')!;
      assert.deepEqual([root.extractable, root.problems.length], [false, 0]);
      assert.notEqual(readPin(`file:${custodianPinFiles(old).rootPin}`), sitePin, 'a PIN of its own');
      const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: config.rootHsm.softhsmConf });
      try {
        await assert.rejects(hsm.call('openKeyStore', old.rootTokenLabel, sitePin, 1), { code: 'HSM_PIN_INCORRECT' });
      } finally {
        await hsm.close();
      }
    } finally {
      await dropDeployment({ ...old, pgDatabase: `${config.pgDatabase}0` }).catch(() => undefined);
    }
  });
});
