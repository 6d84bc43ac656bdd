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
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
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
  // Issue 33 §2: a console session's cookie hash is proof of its token to the rule functions.
  // Issue 40 §3: the audit chain. Rows come only through fp_audit_append, seals only through fp_audit_seal.
  ['choose an audit row\'s seq and time', `INSERT INTO audit_events (seq, at, site, actor, action) OVERRIDING SYSTEM VALUE VALUES (9000000000, now() - interval '1 day', 'a', 'mallory', 'x')`],
  ['insert an audit row around the function', `INSERT INTO audit_events (site, actor, action) VALUES ('a', 'mallory', 'x')`],
  ['forge a seal far ahead', `INSERT INTO audit_seals (seq, chain_hash, rows) VALUES (9000000000, sha256('x'), 1)`],
  ['chain rows by hand', `UPDATE audit_events SET chain_hash = sha256('x') WHERE chain_hash IS NULL`],
  ['read console session secrets', `SELECT id_sha256 FROM console_sessions`],
  ['open a console session for anyone', `INSERT INTO console_sessions (id_sha256, person_id, token_id, expires_at) SELECT sha256('x'), person_id, id, now() + interval '1 day' FROM api_tokens LIMIT 1`],
];

/** A client certificate for an administrator, as a subverted service would record one. */
const CLIENT_CERTIFICATE = `INSERT INTO organisation_certificates (serial, purpose, subject_dn, role, key_id, certificate, not_after, person_id) SELECT '\\x0a01', 'client', 'CN=mallory', 'administrator', '\\x00', '\\x00', now() + interval '1 year', id FROM people LIMIT 1`;

/** And per role, writes that belong to another part of the system. */
const FORBIDDEN_PER_ROLE: Readonly<Record<DatabaseClient, readonly [string, string][]>> = {
  issuer: [
    ['give a manufacturer device ids', `INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) SELECT id, '\\x0000000000000000', '\\xffffffffffffffff', 'mallory' FROM manufacturers LIMIT 1`],
    ['re-key a CA', `UPDATE cas SET certificate = '\\x00'`],
    ['write OCSP responses', `INSERT INTO ocsp_responses (serial, hash_alg, status, this_update, next_update, der) VALUES ('\\x00', 'sha1', 'good', now(), now(), '\\x00')`],
    ['write a CRL', `DELETE FROM crls`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
    ['un-revoke a CA two people revoked', `UPDATE cas SET status = 'active'`],
    ['record a client certificate for anyone', CLIENT_CERTIFICATE],
    ['forge a root link meters would follow', `INSERT INTO root_links (old_root_id, new_root_id, new_with_old, old_with_new) SELECT c.id, o.id, '\\x00', '\\x00' FROM cas c, cas o WHERE c.kind = 'root' AND o.id = 'fpd1' LIMIT 1`],
  ],
  worker: [
    ['give a manufacturer device ids', `INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) SELECT id, '\\x0000000000000000', '\\xffffffffffffffff', 'mallory' FROM manufacturers LIMIT 1`],
    ['revoke', `INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by) SELECT serial, ca_id, crl_shard, 1, 'x' FROM certificates LIMIT 1`],
    ['revoke a CA', `UPDATE cas SET status = 'revoked'`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
    ['register a manufacturer', `INSERT INTO manufacturers (id, name) VALUES ('mallory', 'x')`],
    ['record a client certificate for anyone', CLIENT_CERTIFICATE],
  ],
  status: [
    ['give a manufacturer device ids', `INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) SELECT id, '\\x0000000000000000', '\\xffffffffffffffff', 'mallory' FROM manufacturers LIMIT 1`],
    ['revoke', `INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by) SELECT serial, ca_id, crl_shard, 1, 'x' FROM certificates LIMIT 1`],
    ['issue', `INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, site) VALUES ('\\x0a0000000000000001', 'fpd1', '\\x0000000000000001', 'digitalSignature', 'smart-meter', sha256('x'), 'a')`],
    ['revoke a CA', `UPDATE cas SET status = 'revoked'`],
    ['change site roles', `UPDATE site_state SET role = 'active'`],
    ['record a client certificate for anyone', CLIENT_CERTIFICATE],
  ],
  operator: [
    ['retire a root by hand, past fp_root_retire', `UPDATE cas SET status = 'retired' WHERE kind = 'root'`],
    ['drop a root link', `DELETE FROM root_links`],
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

  it("a root's certificate never changes, even for the operator role that renews CA certificates (its links were checked against it)", async () => {
    const message = await refused(pools.get('operator')!, `UPDATE cas SET certificate = '\\x00' WHERE kind = 'root'`);
    assert.match(message ?? 'accepted', /CA_ROOT_FROZEN/);
  });

  it('the approval rules refuse a made-up credential, whoever calls them', async () => {
    for (const client of ['issuer', 'operator'] as const) {
      const message = await refused(pools.get(client)!, `SELECT fp_approval_approve('${randomUUID()}', 'token:${randomUUID()}')`);
      assert.match(message ?? '', /APPROVAL_NOT_FOUND|AUTH_INVALID/, client);
    }
  });

  it('no service role reads the whole server\'s state (pg_monitor); replication state comes through functions', async () => {
    for (const client of DATABASE_CLIENTS) {
      const { rows } = await owner.query<{ member: boolean }>("SELECT pg_has_role($1, 'pg_monitor', 'MEMBER') AS member", [`fleetpki_${client}`]);
      assert.equal(rows[0]!.member, false, `fleetpki_${client} is a pg_monitor member`);
      const receiver = await pools.get(client)!.query('SELECT * FROM fp_wal_receiver()');
      assert.equal(receiver.rowCount, 1, client);
    }
  });

  it('fp_audit_seal refuses a seal that does not continue the last one or leaves a row out', async () => {
    const status = pools.get('status')!;
    const far = await refused(status, `SELECT fp_audit_seal(ARRAY[9000000000]::bigint[], ARRAY[sha256('x')], '\\x00', '\\x00')`);
    assert.match(far ?? '', /AUDIT_SEAL_INVALID|AUDIT_SEAL_GAP/, 'a seal of a row that does not exist');
    const client = await status.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT fp_audit_append(ARRAY['a','a'], ARRAY['test','test'], ARRAY['x','y'], ARRAY[NULL,NULL]::text[], ARRAY['{}','{}']::jsonb[])`);
      const { rows } = await client.query<{ seq: string }>(`SELECT seq::text FROM audit_events WHERE actor = 'test' AND action = 'y' ORDER BY seq DESC LIMIT 1`);
      await assert.rejects(client.query(`SELECT fp_audit_seal(ARRAY[$1]::bigint[], ARRAY[sha256('x')], '\\x00', '\\x00')`, [rows[0]!.seq]), /AUDIT_SEAL_GAP/, 'sealing the newest row over older unsealed ones');
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
  });

  it('a revoked CA stays revoked, whoever writes (the owner included)', async () => {
    const client = await owner.connect();
    try {
      await client.query('BEGIN');
      await client.query("UPDATE cas SET status = 'revoked', revoked_at = now(), revocation_reason = 1 WHERE id = 'org1'");
      await assert.rejects(client.query("UPDATE cas SET status = 'active' WHERE id = 'org1'"), /CA_REVOKED/);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
  });

  it('the issuer revokes a CA only as the execution of an approved ca.revoke for it', async () => {
    const message = await refused(pools.get('issuer')!, `SELECT fp_ca_revoke('org1', 1::smallint, '${randomUUID()}')`);
    assert.match(message ?? '', /APPROVAL_REQUIRED/);
  });

  it('the owner role is the only one that may migrate', async () => {
    const { rows } = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE 'fleetpki\\_%' AND rolname <> 'fleetpki_service' AND (rolsuper OR rolcreaterole OR rolcreatedb)`);
    assert.equal(rows[0]!.n, 0);
  });
});
