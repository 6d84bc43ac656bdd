import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeviceKeyService, ensureAuditKey } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { HsmProcess, parsePkcs11Uri, readPin, type KeyRef } from '@fleetpki/hsm';
import { checkKeyProtection, siteSoPinFile, startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { listCas, listMasterKeys, type Pool } from '@fleetpki/store';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { cli } from './support/cli.js';
import { ensureSites, localUrl } from './support/sites.js';
import { openSiteKeyStore } from '@fleetpki/hsm';

/**
 * Issue 33 §1, performed as a process holding only site A's user PIN (what every service reads) would:
 * it watches the token while `custody create` runs, copies any trusted key it sees with CKA_UNWRAP on
 * (or switches the key itself to unwrap), wraps the CA and master keys under it and unwraps them again
 * as readable session objects. The attacker runs in an HSM process of its own, a separate PKCS#11
 * application from the ceremony, as it would in reality.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let custodianToken: string;
let userPin: string;
const targets: { ref: KeyRef; keyClass: 'private' | 'secret'; what: string; spki?: Buffer }[] = [];

async function attacker(): Promise<HsmProcess> {
  const hsm = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: config.sites.a.softhsmConf });
  await hsm.call('openKeyStore', config.sites.a.hsmTokenLabel, userPin, 1);
  return hsm;
}

/** Runs the trusted-key attack beside `during`, and says what it got. */
async function attackDuring(during: () => Promise<void>) {
  const hsm = await attacker();
  try {
    await hsm.call('probeTheftStart', targets.map((t) => ({ ref: t.ref, keyClass: t.keyClass })));
    await during();
    return await hsm.call('probeTheftStop');
  } finally {
    await hsm.close();
  }
}

/** The public point of a P-256 private scalar, as a last check that what came out is the CA key. */
function pointOf(scalar: Buffer): Buffer {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalar.length === 32 ? scalar : Buffer.concat([Buffer.alloc(32 - scalar.length), scalar]));
  return ecdh.getPublicKey();
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  custodianToken = await createToken(pool, 'custodian', null, `test-custodian-${Date.now()}`);
  userPin = readPin(`file:${config.sites.a.hsmPinFile}`);
  const site = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  try {
    const devices = new DeviceKeyService(pool, site, 'a');
    for (const role of ['mac', 'enc'] as const) if (!(await listMasterKeys(pool)).some((m) => m.role === role)) await devices.createMasterKey(role, 'test');
    await ensureAuditKey(pool, site, 'a', 'test');
    for (const ca of await listCas(pool)) {
      const uri = parsePkcs11Uri(ca.keyUri);
      if (ca.kind === 'root' || uri.token !== config.sites.a.hsmTokenLabel) continue;
      targets.push({ ref: { label: uri.object, id: uri.id! }, keyClass: 'private', what: `CA key ${ca.id}`, spki: (await site.describeKey({ label: uri.object, id: uri.id! })).publicKeySpki });
    }
    for (const m of await listMasterKeys(pool)) targets.push({ ref: { label: m.keyLabel, id: m.keyObjectId! }, keyClass: 'secret', what: `master key ${m.keyLabel}` });
  } finally {
    await site.close();
  }
});

after(async () => {
  await pool?.end();
});

describe("the custody ceremony's key-encryption key against a holder of the site's user PIN", () => {
  it('a trusted key made as ceremonies made it before is copied, and the CA and master keys come out in clear through it', async () => {
    const label = `planted-kek-${randomBytes(3).toString('hex')}`;
    const so = await HsmProcess.start({ modulePath: config.pkcs11Module, softhsmConf: config.sites.a.softhsmConf });
    try {
      await so.call('probePlantLegacyTrustedKek', config.sites.a.hsmTokenLabel, readPin(`file:${siteSoPinFile(config, config.sites.a)}`), label);
    } finally {
      await so.close();
    }
    try {
      const got = await attackDuring(() => new Promise((r) => setTimeout(r, 200)));
      assert.deepEqual(got.trustedSeen, [label]);
      assert.ok(got.copies > 0, 'C_CopyObject of the trusted key with CKA_UNWRAP on went through');
      const fpd1 = targets.find((t) => t.ref.label === 'fpd1')!;
      const scalar = got.extracted.find((e) => e.label === 'fpd1')?.value;
      assert.ok(scalar, `fpd1 came out (extracted: ${got.extracted.map((e) => e.label).join(', ')})`);
      assert.deepEqual(pointOf(scalar), fpd1.spki!.subarray(fpd1.spki!.length - 65), "the clear value is fpd1's private key");
      assert.ok(got.extracted.some((e) => targets.some((t) => t.keyClass === 'secret' && t.ref.label === e.label)), 'a device master key came out too');

      // What an operator must then see: hsm check names the key, a ceremony refuses to start beside it.
      const report = await checkKeyProtection(config);
      const finding = report.findings.find((f) => f.label === label);
      assert.ok(finding && finding.problems.some((p) => /trusted key outside a custody ceremony/.test(p)), `hsm check names ${label}: ${JSON.stringify(finding)}`);
      assert.equal(report.ok, false);
      const refused = await cli(['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', mkdtempSync(join(tmpdir(), 'fleetpki-kek-'))], { FLEETPKI_TOKEN: custodianToken });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`HSM_TRUSTED_KEY_PRESENT: .*${label}`));
      // ...and the issuer API is not ready while it is there.
      const ports = { FLEETPKI_API_PORT_A: String(config.sites.a.apiPort + 310), FLEETPKI_STATUS_PORT_A: String(config.sites.a.statusPort + 310) };
      const api = startService(config, 'issuer-api', ports);
      try {
        await waitForHttp(`${localUrl(config, 'api', ports.FLEETPKI_API_PORT_A)}/healthz`, 60_000);
        const ready = await fetch(`${localUrl(config, 'api', ports.FLEETPKI_API_PORT_A)}/readyz`);
        const body = (await ready.json()) as { code?: string; message?: string };
        assert.deepEqual([ready.status, body.code], [503, 'HSM_TRUSTED_KEY_PRESENT'], JSON.stringify(body));
        assert.match(body.message ?? '', new RegExp(label));
      } finally {
        await stopProcess(api);
      }
    } finally {
      const removed = await cli(['hsm', 'destroy-trusted-key', '--label', label], { FLEETPKI_TOKEN: custodianToken });
      assert.equal(removed.code, 0, removed.stderr);
    }
    const after = await attackDuring(async () => undefined);
    assert.deepEqual(after.trustedSeen, [], 'the planted key is gone');
  });

  it('during a real `custody create` the attacker sees no trusted key and gets nothing out; nothing is left after it', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fleetpki-kek-'));
    let created: Awaited<ReturnType<typeof cli>> | undefined;
    const got = await attackDuring(async () => {
      created = await cli(['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', out], { FLEETPKI_TOKEN: custodianToken });
    });
    assert.equal(created!.code, 0, created!.stderr);
    assert.ok(got.rounds > 10, `the attacker kept looking during the whole ceremony (${got.rounds} rounds)`);
    assert.deepEqual({ trustedSeen: got.trustedSeen, copies: got.copies, modified: got.modified, extracted: got.extracted.map((e) => e.label) }, { trustedSeen: [], copies: 0, modified: 0, extracted: [] });
    const after = await attackDuring(async () => undefined);
    assert.deepEqual(after.trustedSeen, [], 'no trusted key stays on the token');
  });

  it('copy and set-attribute are refused on every CA and master key', async () => {
    const hsm = await attacker();
    try {
      assert.ok(targets.length >= 4, targets.map((t) => t.what).join(', '));
      for (const t of targets) {
        const copy = await hsm.call('probeCopy', t.ref, t.keyClass);
        assert.deepEqual([t.what, copy.refused], [t.what, true], `${t.what}: C_CopyObject went through`);
        const modify = await hsm.call('probeModify', t.ref, t.keyClass);
        assert.deepEqual([t.what, modify.refused], [t.what, true], `${t.what}: C_SetAttributeValue went through`);
      }
    } finally {
      await hsm.close();
    }
  });

  it('hsm check reports the copy and modify probes for every key, and finds nothing wrong after a ceremony', async () => {
    const report = await checkKeyProtection(config);
    const siteA = report.findings.filter((f) => f.hsm === 'site a');
    for (const t of targets) {
      const f = siteA.find((x) => x.label === t.ref.label)!;
      assert.match(f.copyProbe, /^refused: CKR_ACTION_PROHIBITED/, `${t.what}: ${f.copyProbe}`);
      assert.match(f.modifyProbe, /^refused: CKR_ACTION_PROHIBITED/, `${t.what}: ${f.modifyProbe}`);
      assert.deepEqual(f.problems, [], t.what);
    }
  });
});

describe('device master keys against a holder of the user PIN (what README says they can and cannot do)', () => {
  it('they can derive any device key in clear, as the services do to deliver them; the master key itself stays in', async () => {
    const master = targets.find((t) => t.keyClass === 'secret')!;
    const hsm = await attacker();
    try {
      const derived = await hsm.call('probeDeriveInClear', master.ref, randomBytes(16));
      assert.equal(derived.refused, false, 'SoftHSM 2.6.1 has no CKA_DERIVE_TEMPLATE: derivation takes any template');
      assert.equal(derived.refused ? 0 : derived.value.length, 16);
      assert.equal((await hsm.call('probeWrapUnderOwnKey', master.ref, 'secret')).refused, true, 'wrap under own key');
      assert.equal((await hsm.call('probeCopy', master.ref, 'secret')).refused, true, 'copy');
      assert.equal((await hsm.call('probeModify', master.ref, 'secret')).refused, true, 'set CKA_ENCRYPT');
      assert.equal((await hsm.call('probeReadValue', master.ref, 'secret')).refused, true, 'read CKA_VALUE');
    } finally {
      await hsm.close();
    }
  });
});
