import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DATABASE_CLIENTS, type DatabaseClient, type FleetConfig } from '@fleetpki/core';
import { createPool, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * Least privilege, per database role. The services and the CLI run the whole suite as their own roles
 * (fleetpki_issuer, _worker, _status, _operator), so a grant their code needs and lacks fails the
 * suite; this file checks the other direction: what none of them may do, even with its process
 * subverted. Each statement runs in a transaction that is rolled back, whatever happens.
 */
let config: FleetConfig;
let owner: Pool;
const pools = new Map<DatabaseClient, Pool>();

before(async () => {
  config = await ensureSites();
  owner = siteAPool(config);
  await ensureCa(config, owner);
  for (const client of DATABASE_CLIENTS) pools.set(client, createPool(config.sites.a.serviceDatabaseUrls[client], { max: 1, applicationName: `fleetpki-test-${client}` }));
});

after(async () => {
  for (const pool of pools.values()) await pool.end();
  await owner?.end();
});

/** Statements no service and no operator may run (un-revoking meters, minting identities, self-approval, the schema, the audit log). */
const FORBIDDEN: readonly [string, string][] = [
  ['un-revoke a meter', `DELETE FROM revocations`],
  ['change a revocation', `UPDATE revocations SET reason = 0`],
  ['empty revocations', `TRUNCATE revocations`],
  ['lock revocations against the publisher', `LOCK TABLE revocations IN EXCLUSIVE MODE`],
  ['insert an administrator token', `INSERT INTO api_tokens (id, name, token_sha256, role, person_id) SELECT gen_random_uuid(), 'x', sha256('x'), 'administrator', id FROM people LIMIT 1`],
  ['revive a revoked token', `UPDATE api_tokens SET revoked_at = NULL`],
  ['read token hashes', `SELECT token_sha256 FROM api_tokens`],
  ['create a person', `INSERT INTO people (id, name, role) VALUES (gen_random_uuid(), 'mallory', 'administrator')`],
  ['promote a person', `UPDATE people SET role = 'administrator'`],
  ['mark an approval approved', `UPDATE approval_requests SET approved_at = now(), approved_by = 'x', approved_by_name = 'y'`],
  ['insert an approval', `INSERT INTO approval_requests (id, action, payload, summary, requested_by, requested_by_name, expires_at) VALUES (gen_random_uuid(), 'ca.revoke', '{}', 'x', 'a', 'b', now() + interval '1 day')`],
  ['delete an approval', `DELETE FROM approval_requests`],
  ['create a table', `CREATE TABLE mallory (i int)`],
  ['alter a table', `ALTER TABLE certificates ADD COLUMN mallory int`],
  ['drop a table', `DROP TABLE crl_dirty`],
  ['rewrite the audit log', `UPDATE audit_events SET actor = 'mallory'`],
  ['delete audit rows', `DELETE FROM audit_events`],
  ['truncate the audit log', `TRUNCATE audit_events`],
  ['delete seals', `DELETE FROM audit_seals`],
  ['switch triggers off', `SET session_replication_role = replica`],
  ['move the migrations', `INSERT INTO schema_migrations (version, name, sha256) VALUES (9999, 'x', '\\x00')`],
];

/** And per role, writes that belong to another part of the system. */
const FORBIDDEN_PER_ROLE: Readonly<Record<DatabaseClient, readonly [string, string][]>> = {
  issuer: [
    ['give a manufacturer device ids', `INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) SELECT id, '\\x0000000000000000', '\\xffffffffffffffff', 'mallory' FROM manufacturers LIMIT 1`],
    ['re-key a CA', `UPDATE cas SET certificate = '\\x00'`],
    ['write OCSP responses', `INSERT INTO ocsp_responses (serial, hash_alg, status, this_update, next_update, der) VALUES ('\\x00', 'sha1', 'good', now(), now(), '\\x00')`],
    ['write a CRL', `DELETE FROM crls`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
  ],
  worker: [
    ['give a manufacturer device ids', `INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) SELECT id, '\\x0000000000000000', '\\xffffffffffffffff', 'mallory' FROM manufacturers LIMIT 1`],
    ['revoke', `INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by) SELECT serial, ca_id, crl_shard, 1, 'x' FROM certificates LIMIT 1`],
    ['revoke a CA', `UPDATE cas SET status = 'revoked'`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
    ['register a manufacturer', `INSERT INTO manufacturers (id, name) VALUES ('mallory', 'x')`],
  ],
  status: [
    ['give a manufacturer device ids', `INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) SELECT id, '\\x0000000000000000', '\\xffffffffffffffff', 'mallory' FROM manufacturers LIMIT 1`],
    ['revoke', `INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by) SELECT serial, ca_id, crl_shard, 1, 'x' FROM certificates LIMIT 1`],
    ['issue', `INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site) VALUES ('\\x0a0000000000000001', 'fpd1', '\\x0000000000000001', 'digitalSignature', 'smart-meter', sha256('x'), 'a')`],
    ['revoke a CA', `UPDATE cas SET status = 'revoked'`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
  ],
  operator: [
    ['revoke', `INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by) SELECT serial, ca_id, crl_shard, 1, 'x' FROM certificates LIMIT 1`],
    ['issue', `INSERT INTO certificates (serial, ca_id, eui64, key_role, profile, der, not_before, not_after, crl_shard) VALUES ('\\x0a0000000000000001', 'fpd1', '\\x0000000000000001', 'digitalSignature', 'smart-meter', '\\x00', now(), now(), 0)`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
  ],
};

async function refused(pool: Pool, sql: string): Promise<string | undefined> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      await client.query(sql);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

describe('database roles: one per service, each with only its grants', () => {
  for (const client of DATABASE_CLIENTS) {
    it(`${client}: refuses every forbidden statement`, async () => {
      const pool = pools.get(client)!;
      const { rows } = await pool.query<{ who: string }>('SELECT current_user AS who');
      assert.equal(rows[0]!.who, `fleetpki_${client}`);
      for (const [what, sql] of [...FORBIDDEN, ...FORBIDDEN_PER_ROLE[client]]) {
        const message = await refused(pool, sql);
        assert.ok(message, `${client} may ${what}: ${sql}`);
        assert.match(message, /permission denied|must be owner/, `${client}: ${what}: ${message}`);
      }
    });
  }

  it('the approval rules refuse a made-up credential, whoever calls them', async () => {
    for (const client of ['issuer', 'operator'] as const) {
      const message = await refused(pools.get(client)!, `SELECT fp_approval_approve('${randomUUID()}', 'token:${randomUUID()}')`);
      assert.match(message ?? '', /APPROVAL_NOT_FOUND|AUTH_INVALID/, client);
    }
  });

  it('the owner role is the only one that may migrate', async () => {
    const { rows } = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE 'fleetpki\\_%' AND rolname <> 'fleetpki_service' AND (rolsuper OR rolcreaterole OR rolcreatedb)`);
    assert.equal(rows[0]!.n, 0);
  });
});
