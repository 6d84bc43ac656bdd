import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { openSiteDaemons } from '@fleetpki/daemons';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createPool, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';
import { createStatusSite, preProduceFor, type StatusSiteRuntime } from './support/status.js';

/**
 * Review of issue 37 (the daemons and the responders' feed): what a holder of one service role's
 * password can do to the background jobs that now run in their own process. Each test is the attack,
 * played against the real PostgreSQL with that role's own connection, then what must still hold.
 * Fixed in migrations/0043 (feed position, revocation time and generation assigned by the database)
 * and in the store (supersededUnrevoked, the refresher's due list, the overwrite of rows dated ahead).
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let issuerRole: Pool;
let statusRole: Pool;
let issuer: IssuerRuntime;
let status: StatusSiteRuntime;
let factoryToken: string;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  issuer = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4 });
  factoryToken = await createToken(pool, 'factory', 'review-daemons-maker');
  status = await createStatusSite({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0 });
  issuerRole = createPool(config.sites.a.serviceDatabaseUrls.issuer, { max: 1, applicationName: 'fleetpki-review-issuer' });
  statusRole = createPool(config.sites.a.serviceDatabaseUrls.status, { max: 1, applicationName: 'fleetpki-review-status' });
});

after(async () => {
  await issuerRole?.end();
  await statusRole?.end();
  await status?.close();
  await issuer?.close();
  await pool?.end();
});

async function enrolDevice(): Promise<{ serial: string; eui64: string }> {
  const [key] = generateDeviceKeys(1);
  const eui64 = syntheticEui64('review-daemons-maker');
  const res = await issuer.app.inject({
    method: 'POST',
    url: '/v1/enrolments',
    headers: { authorization: `Bearer ${factoryToken}` },
    payload: { eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') },
  });
  assert.equal(res.statusCode, 201, res.body);
  return { serial: res.json<{ serial: string }>().serial, eui64 };
}

const revoked = async (serialHex: string): Promise<boolean> => (await pool.query('SELECT 1 FROM revocations WHERE serial = $1', [Buffer.from(serialHex, 'hex')])).rowCount === 1;

describe('review of issue 37: the daemons and the feed against one service role', () => {
  it('fleetpki_issuer marks a live certificate and intents without one "renewed": est-superseded revokes none of them and reports no backlog', async () => {
    const device = await enrolDevice();
    const serial = Buffer.from(device.serial, 'hex');
    // The live certificate, no successor: "renewed" an hour ago by the issuer role's own hand.
    await issuerRole.query(`UPDATE issuance_intents SET active = false, released_at = now(), renewed_at = now() - interval '1 hour' WHERE serial = $1`, [serial]);
    // Released intents that never got a certificate, marked renewed (as many as a pass takes).
    const { rows: ca } = await pool.query<{ ca_id: string; profile: string }>('SELECT ca_id, profile FROM issuance_intents WHERE serial = $1', [serial]);
    const serials = Array.from({ length: 1000 }, () => Buffer.concat([Buffer.from([0x7f]), randomBytes(11)]));
    await pool.query(
      `INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site, active)
       SELECT s, $2, $3, 'keyAgreement', $4, $5, 'a', false FROM unnest($1::bytea[]) AS s`,
      [serials, ca[0]!.ca_id, Buffer.from(device.eui64, 'hex'), ca[0]!.profile, randomBytes(32)],
    );
    await issuerRole.query(`UPDATE issuance_intents SET renewed_at = now() - interval '2 hours' WHERE eui64 = $1 AND key_role = 'keyAgreement'`, [Buffer.from(device.eui64, 'hex')]);

    const auditBefore = (await pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'revocation.request' AND actor = 'daemons:a' AND (details->>'revoked')::int = 0`)).rows[0]!.n as number;
    const daemons = await openSiteDaemons({ ...config, site: 'a', est: { ...config.est, revokeSupersededAfterSeconds: 0 } }, { only: ['est-superseded'], logger: false });
    try {
      await daemons.runOnce();
      await daemons.runOnce();
      assert.equal(daemons.stats()[0]!.passes, 2, 'the job ran (this site acts)');
    } finally {
      await daemons.close();
    }
    assert.equal(await revoked(device.serial), false, 'a device\'s only certificate is not revoked as superseded');
    const auditAfter = (await pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'revocation.request' AND actor = 'daemons:a' AND (details->>'revoked')::int = 0`)).rows[0]!.n as number;
    assert.equal(auditAfter, auditBefore, 'no pass asked to revoke what cannot be revoked (before the fix: a request per pass, revoking 0)');
  });

  it('fleetpki_status sets one row\'s feed position to the maximum: the database assigns its own, and the feed goes on', async () => {
    const device = await enrolDevice();
    await preProduceFor(status, pool, [device.serial]);
    const serial = Buffer.from(device.serial, 'hex');
    await statusRole.query(`UPDATE ocsp_responses SET stored_seq = 9223372036854775807 WHERE serial = $1`, [serial]);
    const { rows } = await pool.query<{ seq: string }>(`SELECT stored_seq::text AS seq FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1'`, [serial]);
    assert.notEqual(rows[0]!.seq, '9223372036854775807');
    const { rows: top } = await pool.query<{ seq: string }>('SELECT max(stored_seq)::text AS seq FROM ocsp_responses');
    assert.notEqual(top[0]!.seq, '9223372036854775807', 'a responder starting now follows from a position later writes go past');
    // A later write lands after it in the feed.
    const later = await enrolDevice();
    await preProduceFor(status, pool, [later.serial]);
    const { rows: next } = await pool.query<{ seq: string }>(`SELECT stored_seq::text AS seq FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1'`, [Buffer.from(later.serial, 'hex')]);
    assert.ok(BigInt(next[0]!.seq) > BigInt(rows[0]!.seq));
  });

  it('fleetpki_issuer cannot move the revocation generation; a revocation it inserts by hand still bumps it and is dated now', async () => {
    await assert.rejects(issuerRole.query('UPDATE revocation_generation SET generation = 9223372036854775807'), /permission denied/);
    await assert.rejects(issuerRole.query('UPDATE revocation_generation SET generation = 1'), /permission denied/);
    const device = await enrolDevice();
    const before = Number((await pool.query<{ g: string }>('SELECT generation::text AS g FROM revocation_generation')).rows[0]!.g);
    await issuerRole.query(
      `INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by, created_at) SELECT serial, ca_id, crl_shard, 1, 'review-by-hand', '2000-01-01' FROM certificates WHERE serial = $1`,
      [Buffer.from(device.serial, 'hex')],
    );
    const after = Number((await pool.query<{ g: string }>('SELECT generation::text AS g FROM revocation_generation')).rows[0]!.g);
    assert.equal(after, before + 1, 'every responder\'s cached "good" stops being served');
    const { rows } = await pool.query<{ recent: boolean }>(`SELECT created_at > now() - interval '1 hour' AS recent FROM revocations WHERE serial = $1`, [Buffer.from(device.serial, 'hex')]);
    assert.equal(rows[0]!.recent, true, 'not backdated past the responders\' revocation cursor');
  });

  it('fleetpki_status dates stored responses ahead: the refresher replaces them instead of signing them again on every pass', async () => {
    const device = await enrolDevice();
    await preProduceFor(status, pool, [device.serial]);
    const serial = Buffer.from(device.serial, 'hex');
    await statusRole.query(`UPDATE ocsp_responses SET this_update = '2100-01-01', next_update = now() + interval '1 minute' WHERE serial = $1`, [serial]);
    await status.refresher!.refreshExpiring();
    const { rows } = await pool.query<{ this_update: Date; next_update: Date }>(`SELECT this_update, next_update FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1'`, [serial]);
    assert.ok(rows[0]!.this_update.getTime() <= Date.now() + 60_000, 'signed now, not 2100');
    assert.ok(rows[0]!.next_update.getTime() > Date.now() + 86_400_000, 'valid again for days: no longer due');
  });
});
