import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { CA_IDS, newSerial, openIssuingCa, parseCustodianShare, signCertificate } from '@fleetpki/ca';
import { openRemoteKeyStore, readPin } from '@fleetpki/hsm';
import { listCas } from '@fleetpki/store';
import { generateDeviceKeys, lintDeviceTbs, toPem } from '@fleetpki/x509';
import type { FleetConfig } from '@fleetpki/core';
import type { Pool } from '@fleetpki/store';
import { createToken, ensureCa, openssl, siteAPool, writeCaFile } from './support/ca.js';
import { cli } from './support/cli.js';
import { ensureSites } from './support/sites.js';

let config: FleetConfig;
let custodianToken: string;
/** Custody ceremonies and key restores are a custodian's: the CLI takes their token. */
const custodianEnv = () => ({ FLEETPKI_TOKEN: custodianToken });
let pool: Pool;
let dir: string;
const share = (n: number) => join(dir, `custodian-${n}.share`);

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  custodianToken = await createToken(pool, 'custodian', null, `test-custodian-${Date.now()}`);
  dir = mkdtempSync(join(tmpdir(), 'fleetpki-custody-'));
});

after(async () => {
  await pool?.end();
});

describe('key custody: CA keys cloned into the standby HSM under a 3-of-5 key-encryption key', () => {
  it('creates five shares on the active site and stores the wrapped keys', async () => {
    const created = await cli(['custody', 'create', '--custodians', '5', '--threshold', '3', '--out', dir], custodianEnv());
    assert.equal(created.code, 0, created.stderr);
    const shares = [1, 2, 3, 4, 5].map((n) => parseCustodianShare(readFileSync(share(n), 'utf8'), share(n)));
    assert.equal(new Set(shares.map((s) => s.share)).size, 5, 'five different shares');
    const { rows } = await pool.query<{ key_label: string; n: number }>("SELECT key_label, octet_length(wrapped) AS n FROM key_backups WHERE kek_id = $1 AND key_class = 'private' ORDER BY key_label", [shares[0]!.kekId]);
    assert.deepEqual(rows.map((r) => r.key_label), ['fpd1', 'org1']);
    // RFC 5649 wrapping of a P-256 PKCS#8 key: a few dozen bytes, never the clear key.
    for (const r of rows) assert.ok(r.n >= 64 && r.n <= 160, `wrapped ${r.key_label} is ${r.n} bytes`);
  });

  it("is a custodian's: without a token, or with another role's, nothing happens", async () => {
    const none = await cli(['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', join(dir, 'x')], { FLEETPKI_TOKEN: '' });
    assert.match(none.stderr, /TOKEN_MISSING/);
    const factory = await createToken(pool, 'factory', 'custody-maker', `custody-factory-${Date.now()}`);
    const wrongRole = await cli(['custody', 'restore', '--share', share(1), '--share', share(2), '--share', share(3)], { FLEETPKI_TOKEN: factory });
    assert.match(wrongRole.stderr, /ROLE_FORBIDDEN/);
    assert.match((await cli(['ceremony', 'init'], { FLEETPKI_TOKEN: factory })).stderr, /ROLE_FORBIDDEN/);
  });

  it('refuses two shares, a tampered share and a missing file, each with its code', async () => {
    const two = await cli(['custody', 'restore', '--share', share(1), '--share', share(2)], custodianEnv());
    assert.match(two.stderr, /CUSTODY_SHARES_INSUFFICIENT: 2 distinct custodian share\(s\) given; 3 of 5 are needed/);
    const forged = JSON.parse(readFileSync(share(3), 'utf8')) as { share: string };
    const bytes = Buffer.from(forged.share, 'base64');
    bytes[0] = bytes[0]! ^ 0x01;
    writeFileSync(join(dir, 'forged.share'), JSON.stringify({ ...forged, share: bytes.toString('base64') }));
    const tampered = await cli(['custody', 'restore', '--share', share(1), '--share', share(2), '--share', join(dir, 'forged.share')], custodianEnv());
    assert.match(tampered.stderr, /CUSTODY_SHARES_MISMATCH: the shares do not rebuild/);
    const missing = await cli(['custody', 'restore', '--share', join(dir, 'nope.share')], custodianEnv());
    assert.match(missing.stderr, /SHARE_UNREADABLE/);
    assert.notEqual(missing.code, 0);
  });

  it('any three shares put the keys into site B as non-extractable clones of the same public keys', async () => {
    const restored = await cli(['custody', 'restore', '--site', 'b', '--share', share(2), '--share', share(4), '--share', share(5)], custodianEnv());
    assert.equal(restored.code, 0, restored.stderr);
    assert.ok(restored.stdout.includes(`site b token ${config.sites.b.hsmTokenLabel}: `), restored.stdout);
    for (const label of ['fpd1', 'org1']) {
      const a = JSON.parse((await cli(['hsm', 'describe', label, '--site', 'a', '--json'])).stdout) as { publicKeySpki: string; extractable: boolean };
      const b = JSON.parse((await cli(['hsm', 'describe', label, '--site', 'b', '--json'])).stdout) as { publicKeySpki: string; extractable: boolean; sensitive: boolean };
      assert.equal(b.publicKeySpki, a.publicKeySpki, `${label}: same public key on both sites`);
      assert.equal(a.extractable, true);
      assert.deepEqual([b.sensitive, b.extractable], [true, false], `${label} on site B can never leave its token`);
      assert.equal((b as unknown as { wrapWithTrusted: boolean }).wrapWithTrusted, true);
    }
    // A second restore finds the keys and checks them instead of adding copies.
    const again = await cli(['custody', 'restore', '--site', 'b', '--share', share(1), '--share', share(3), '--share', share(5)], custodianEnv());
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /restored none; already present fpd1, org1/);
  });

  it("site B's clone signs: a device certificate signed in B's HSM passes openssl verify", async () => {
    const record = (await listCas(pool)).find((c) => c.id === CA_IDS.deviceIssuing)!;
    // B's HSM in a process of its own (this one's PKCS#11 module serves site A's).
    const b = await openRemoteKeyStore({ modulePath: config.pkcs11Module, softhsmConf: config.sites.b.softhsmConf }, config.sites.b.hsmTokenLabel, readPin(`file:${config.sites.b.hsmPinFile}`));
    try {
      const ca = await openIssuingCa(record, b, { crlBaseUrl: config.crlBaseUrl });
      const [key] = generateDeviceKeys(1);
      const tbs = ca.template('smart-meter', 'digitalSignature').assemble({ serial: newSerial(11), notBefore: new Date(Math.floor(Date.now() / 1000) * 1000), eui64: randomBytes(8), publicKeySpki: key!.publicKeySpki, crlShard: 0 });
      const der = await signCertificate(ca, lintDeviceTbs(tbs));
      const ca1 = await ensureCa(config, pool);
      const path = writeCaFile(ca1, 'signed-on-b.pem', toPem(der));
      assert.match(openssl(['verify', '-CAfile', ca1.rootPem, '-untrusted', ca1.issuingPem, path]), /: OK/);
    } finally {
      await b.close();
    }
  });
});
