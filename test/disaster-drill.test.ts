import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { readTopology } from '@fleetpki/sites';
import { createPool, type Pool } from '@fleetpki/store';
import { createIssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEui64 } from '@fleetpki/manifest';
import { generateDeviceKeys, toPem } from '@fleetpki/x509';
import { createToken, ensureCa, openssl, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureStandbyKeys } from './support/custody.js';
import { cli, lastJson } from './support/cli.js';
import { ensureSites } from './support/sites.js';

/**
 * Issue 35: both sites' data directories and HSM tokens lost at once. The drill rebuilds the CA from what
 * survives off the sites (the backup repository, the custodians' shares) and issues again; the newest
 * certificate from before still verifies with openssl, and so does the first one after.
 */
let config: FleetConfig;
let ca: TestCa;
let custodianToken: string;
let shares: string[];

before(async () => {
  config = await ensureSites();
  const pool = siteAPool(config);
  try {
    ca = await ensureCa(config, pool);
    await ensureStandbyKeys(pool);
    custodianToken = await createToken(pool, 'custodian', null, `test-disaster-custodian-${Date.now()}`);
    // A certificate from before the disaster, whatever ran before this file.
    const factoryToken = await createToken(pool, 'factory', 'disaster-maker');
    const issuer = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 2 });
    try {
      const res = await issuer.app.inject({
        method: 'POST',
        url: '/v1/enrolments',
        headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
        payload: { eui64: syntheticEui64('disaster-maker'), keyRole: 'digitalSignature', csr: generateDeviceKeys(1)[0]!.csr.toString('base64') },
      });
      assert.equal(res.statusCode, 201, res.body);
    } finally {
      await issuer.close();
    }
  } finally {
    await pool.end();
  }
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-disaster-'));
  const created = await cli(['custody', 'create', '--custodians', '5', '--threshold', '3', '--out', dir], { FLEETPKI_TOKEN: custodianToken });
  assert.equal(created.code, 0, created.stderr);
  shares = [2, 4, 5].map((n) => join(dir, `custodian-${n}.share`));
});

let pool: Pool | undefined;
after(async () => {
  await pool?.end();
});


describe('disaster drill', () => {
  it('refuses without --destroy-both-sites, and touches nothing', async () => {
    const refused = await cli(['drill', 'disaster', ...shares.flatMap((s) => ['--share', s])], { FLEETPKI_TOKEN: custodianToken });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /CONFIRMATION_REQUIRED/);
    const status = await cli(['sites', 'status']);
    assert.equal(status.code, 0, status.stdout);
    assert.match(status.stdout, /a\s+postgres :\d+\s+up\s+primary; standbys: site_b streaming\/sync/);
    assert.deepEqual(readTopology(config), { primary: 'a' });
  });

  it('refuses shares that do not rebuild the key-encryption key, before anything is lost', async () => {
    const two = await cli(['drill', 'disaster', '--destroy-both-sites', '--share', shares[0]!, '--share', shares[1]!], { FLEETPKI_TOKEN: custodianToken });
    assert.notEqual(two.code, 0);
    assert.match(two.stderr, /CUSTODY_SHARES_INSUFFICIENT/);
    const status = await cli(['sites', 'status']);
    assert.equal(status.code, 0, status.stdout);
    assert.match(status.stdout, /a\s+postgres :\d+\s+up\s+primary/);
  });

  it("both sites' data and tokens gone: A rebuilt from the repository, B from A, keys from 3 shares; issuing again, old and new certificates verify with openssl", async () => {
    const run = await cli(['drill', 'disaster', '--archive-first', '--destroy-both-sites', '--json', ...shares.flatMap((s) => ['--share', s])], { FLEETPKI_TOKEN: custodianToken }, 900_000);
    assert.equal(run.code, 0, `${run.stderr.slice(-3000)}\n${run.stdout.slice(-2000)}`);
    const r = lastJson<Record<string, unknown> & { keys_restored: Record<string, string[]> }>(run.stdout);
    console.log(`# disaster drill: first certificate ${r.first_certificate_s} s after both sites were lost (restore ${r.restore_s} s, replay ${r.replay_s} s, standby copy ${r.standby_copy_s} s); ${r.certificates_before} certificates before, ${r.certificates_lost} lost; keys ${JSON.stringify(r.keys_restored)}`);
    assert.equal(r.restored_site, 'a');
    assert.equal(r.copied_site, 'b');
    assert.equal(r.segments_waiting_at_loss, 0, 'archived first');
    assert.ok((r.certificates_before as number) >= 1);
    assert.equal(r.certificates_lost, 0);
    assert.equal(r.revocations_lost, 0);
    assert.equal(r.old_certificate_present, true, 'the newest certificate from before is in the rebuilt database');
    assert.match(r.started_by as string, /^person:/);
    assert.ok((r.first_certificate_s as number) > 0);
    assert.ok(r.keys_restored.a!.length > 0 && r.keys_restored.b!.length > 0, `keys back in both new tokens: ${JSON.stringify(r.keys_restored)}`);
    assert.equal(r.new_certificate_verifies, true);
    assert.equal(r.old_certificate_verifies, true);
    assert.deepEqual(readTopology(config), { primary: 'a' });
    const status = await cli(['sites', 'status']);
    assert.equal(status.code, 0, status.stdout);
    assert.match(status.stdout, /a\s+postgres :\d+\s+up\s+primary; standbys: site_b streaming\/sync/);
    assert.match(status.stdout, /a\s+agent\s+up\s+leads/);
    const db = createPool(config.sites.a.databaseUrl, { max: 1 });
    pool = db;
    for (const serial of [r.old_certificate_serial as string, r.new_certificate_serial as string]) {
      const { rows } = await db.query<{ der: Buffer }>('SELECT der FROM certificates WHERE serial = $1', [Buffer.from(serial, 'hex')]);
      assert.equal(rows.length, 1, `certificate ${serial} is in the rebuilt database`);
      const path = writeCaFile(ca, `disaster-${serial}.pem`, toPem(rows[0]!.der, 'CERTIFICATE'));
      assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, path]), /: OK/);
    }
    // The rebuilt active site can run a custody ceremony again: its keys came back cloneable (under a trusted wrap only).
    const again = await cli(['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', mkdtempSync(join(tmpdir(), 'fleetpki-disaster-again-'))], { FLEETPKI_TOKEN: custodianToken });
    assert.equal(again.code, 0, again.stderr);
    const recorded = await db.query<{ kind: string; rpo_lost: number }>("SELECT kind, rpo_lost FROM drill_runs WHERE kind = 'disaster' ORDER BY finished_at DESC LIMIT 1");
    assert.deepEqual(recorded.rows[0], { kind: 'disaster', rpo_lost: 0 });
  });
});
