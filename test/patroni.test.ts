import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CaSiteReader, openConsensus, patroniKey } from '@fleetpki/consensus';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { killPostgres, patroniCluster, patroniDocument, patroniGet, patroniUrl, pgBinDir, REPLICATION_ROLE, REWIND_ROLE, waitForPatroniRole } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { siteAPool } from './support/ca.js';
import { makeTestTlsCa } from './support/tls-material.js';
import { cli } from './support/cli.js';
import { etcdctl } from './support/etcd-permissions.js';
import { ensureSites, waitFor } from './support/sites.js';

/** psql's answer (stdout and stderr) to one statement on a connection string; it never throws. */
function psql(conninfo: string, env: NodeJS.ProcessEnv, statement = 'SELECT 1'): Promise<string> {
  return new Promise((resolve) => execFile(join(pgBinDir(), 'psql'), [conninfo, '-Atc', statement], { env: { ...process.env, ...env, PGCONNECT_TIMEOUT: '5' } }, (err, stdout, stderr) => resolve(`${err ? 'failed: ' : ''}${stdout}${stderr}`)));
}

/**
 * Patroni runs PostgreSQL (database.ha patroni, issue 35). Attack test: not run again by test-secure.sh
 * (its simulation's PostgreSQL is the site agent's): scripts/test-patroni.sh runs this file on the
 * Patroni simulation, and with --secure on the one with TLS and authentication on every link, where the
 * last test attacks Patroni's links in plaintext; in the plain suite it is skipped.
 * The failover invariants under Patroni are the drills' and the other failover tests', which
 * test-patroni.sh runs there too; this file checks what is Patroni's own: its settings, that its leader
 * key is the CA-site role, that nobody without its credentials can move that role, and that a crashed
 * PostgreSQL is restarted in place rather than failed over.
 */
const loaded = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
const underPatroni = loaded.databaseHa === 'patroni';
const withTls = loaded.tls.parts.postgres !== undefined;
let config: FleetConfig;
let pool: Pool;

before(async () => {
  if (!underPatroni) return;
  config = await ensureSites();
  pool = siteAPool(config);
});

after(async () => {
  await pool?.end();
});

async function epochOf(site: 'a' | 'b'): Promise<number> {
  const { rows } = await pool.query<{ epoch: string; role: string }>('SELECT epoch::text, role FROM site_state WHERE site = $1', [site]);
  assert.equal(rows[0]?.role, 'active', `site ${site} is active`);
  return Number(rows[0]!.epoch);
}

describe('Patroni runs PostgreSQL on both sites', { skip: underPatroni ? false : 'runs on the Patroni simulation (scripts/test-patroni.sh)' }, () => {
  it('A leads with B as its synchronous standby, strict, failsafe, pg_rewind; the CA-site role the services read is Patroni\'s leader key and lease', async () => {
    const cluster = await patroniCluster(config);
    assert.ok(cluster, 'a Patroni answers');
    const roles = Object.fromEntries(cluster.members.map((m) => [m.site, `${m.role}/${m.state}`]));
    assert.equal(roles.a, 'leader/running', JSON.stringify(cluster.members));
    assert.match(roles.b ?? '', /^sync_standby\/(running|streaming)$/, JSON.stringify(cluster.members));
    const dynamic = (await patroniGet(config, config.sites.a, '/config')).body as Record<string, unknown> & { postgresql?: { use_pg_rewind?: boolean } };
    assert.equal(dynamic.synchronous_mode, true);
    assert.equal(dynamic.synchronous_mode_strict, true);
    assert.equal(dynamic.failsafe_mode, true);
    assert.equal(dynamic.postgresql?.use_pg_rewind, true);
    const client = openConsensus(config, 'service');
    try {
      const state = await new CaSiteReader(client, config).read();
      assert.equal(state.leader?.site, 'a');
      const raw = etcdctl(config, 'service', ['get', `${config.consensus.prefix}${patroniKey('leader')}`, '-w', 'json']);
      assert.ok(raw.ok, raw.output);
      const kv = (JSON.parse(raw.output) as { kvs: { value: string }[] }).kvs[0]!;
      assert.equal(Buffer.from(kv.value, 'base64').toString(), 'site_a');
      // The lease is a 64-bit number: read from the text, not through JSON.parse (a double).
      const lease = /"lease":(\d+)/.exec(raw.output)?.[1];
      assert.ok(lease, raw.output);
      assert.equal(BigInt(lease).toString(16), state.leader?.lease, 'the services\' view runs out with the lease Patroni keeps its leader key on');
    } finally {
      client.close();
    }
    const status = await cli(['sites', 'status']);
    assert.match(status.stdout, /a\s+patroni site_a\s+leader\s+running, timeline \d+/);
    assert.match(status.stdout, /b\s+patroni site_b\s+sync_standby\s+(running|streaming)/);
  });

  it('nobody moves the role past Patroni: its REST API refuses a switchover without its password; etcd lets no service, operator or site agent write its leader key, and a site\'s Patroni nothing outside its store', async () => {
    for (const authorization of [undefined, `Basic ${Buffer.from('fleetpki:wrong-password').toString('base64')}`]) {
      const res = await fetch(`${patroniUrl(config, config.sites.a)}/switchover`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: JSON.stringify({ leader: 'site_a', candidate: 'site_b' }) });
      assert.equal(res.status, 401, `switchover ${authorization ? 'with a wrong password' : 'without a password'}: ${res.status} ${await res.text()}`);
    }
    const leaderKey = `${config.consensus.prefix}${patroniKey('leader')}`;
    for (const as of [undefined, 'service', 'operator', 'agent-a', 'agent-b'] as const) {
      for (const args of [['put', leaderKey, 'site_b'], ['del', leaderKey]]) {
        const r = etcdctl(config, as, args);
        assert.equal(r.ok, false, `${args[0]} of Patroni's leader key as ${as ?? 'anonymous'}: ${r.output}`);
        assert.match(r.output, /permission denied|user name is empty|invalid auth token/i);
      }
    }
    // A site's Patroni writes its own store and nothing else of the pair's.
    const outside = etcdctl(config, 'patroni-b', ['put', `${config.consensus.prefix}unprotected`, JSON.stringify({ since: new Date().toISOString(), by: 'patroni-b' })]);
    assert.equal(outside.ok, false, outside.output);
    assert.match(outside.output, /permission denied/i);
    const cluster = await patroniCluster(config);
    assert.equal(cluster?.members.find((m) => m.role === 'leader')?.site, 'a', 'A still leads');
  });

  it('PostgreSQL killed alone on the primary (Patroni alive): Patroni restarts it in place; no failover, the same epoch', async () => {
    const before = await epochOf('a');
    assert.ok(killPostgres(config.sites.a) > 0, 'the primary\'s postmaster was killed');
    await waitForPatroniRole(config, config.sites.a, 'primary', 120_000);
    await waitFor('site A to answer again as the primary', async () => (await pool.query('SELECT 1').then(() => true, () => undefined)), 60_000, 250);
    const cluster = await patroniCluster(config);
    assert.equal(cluster?.members.find((m) => m.role === 'leader')?.site, 'a', 'A still leads');
    assert.equal(await epochOf('a'), before, 'no new epoch: nothing was failed over');
    await waitForPatroniRole(config, config.sites.b, 'sync', 120_000);
  });

  it('with TLS on (test-patroni.sh --secure), nothing of Patroni\'s talks in plaintext: its REST API answers only HTTPS, its PostgreSQL refuses replication, the superuser and a service without TLS even with the right password and the rewind role outside `postgres`, and it refuses an etcd client certificate with a common name', { skip: underPatroni && withTls ? false : 'runs with tls.postgres (scripts/test-patroni.sh --secure)' }, async () => {
    assert.match(patroniUrl(config, config.sites.a), /^https:/);
    const plainRest = await fetch(`http://${config.sites.a.patroniHost}:${config.sites.a.patroniPort}/health`, { signal: AbortSignal.timeout(5_000) }).then((r) => `answered ${r.status}`, (err: Error) => `failed: ${err.message}`);
    assert.match(plainRest, /^failed/, `plain HTTP to Patroni's REST API: ${plainRest}`);
    assert.equal((await patroniGet(config, config.sites.a, '/cluster')).status, 200, 'over HTTPS, checked against the bundle, it answers');
    const replicationPassword = readFileSync(join(config.stateDir, 'patroni-secrets', 'replication'), 'utf8').trim();
    const site = config.sites.a;
    const plainReplication = await psql(`host=${site.host} port=${site.pgPort} user=${REPLICATION_ROLE} dbname=postgres replication=true sslmode=disable`, { PGPASSWORD: replicationPassword }, 'IDENTIFY_SYSTEM');
    assert.match(plainReplication, /^failed: .*(no pg_hba\.conf entry|rejects connection|no encryption)/s, plainReplication);
    const tlsReplication = await psql(`host=${site.host} port=${site.pgPort} user=${REPLICATION_ROLE} dbname=postgres replication=true sslmode=verify-full sslrootcert=${config.tls.caBundle}`, { PGPASSWORD: replicationPassword }, 'IDENTIFY_SYSTEM');
    assert.doesNotMatch(tlsReplication, /^failed/, `the same over TLS is admitted (the refusal above is the plaintext's): ${tlsReplication}`);
    // pg_rewind's role may read the data directory's files in `postgres`; it never logs in to a CA database.
    const rewindPassword = readFileSync(join(config.stateDir, 'patroni-secrets', 'rewind'), 'utf8').trim();
    const verified = `sslmode=verify-full sslrootcert=${config.tls.caBundle}`;
    const rewindInPostgres = await psql(`host=${site.host} port=${site.pgPort} user=${REWIND_ROLE} dbname=postgres ${verified}`, { PGPASSWORD: rewindPassword });
    assert.doesNotMatch(rewindInPostgres, /^failed/, `the rewind role in postgres, over TLS: ${rewindInPostgres}`);
    const rewindInCa = await psql(`host=${site.host} port=${site.pgPort} user=${REWIND_ROLE} dbname=${config.pgDatabase} ${verified}`, { PGPASSWORD: rewindPassword });
    assert.match(rewindInCa, /^failed: .*no pg_hba\.conf entry/s, `the rewind role in the CA database: ${rewindInCa}`);
    const plainService = await psql(`host=${site.host} port=${site.pgPort} user=fleetpki_status dbname=${config.pgDatabase} sslmode=disable`, { PGPASSFILE: process.env.PGPASSFILE ?? '' });
    assert.match(plainService, /^failed: .*(no pg_hba\.conf entry|rejects connection|no encryption)/s, plainService);
    const plainSuperuser = await psql(`host=${site.host} port=${site.pgPort} user=${config.pgUser} dbname=postgres sslmode=disable`, { PGPASSFILE: process.env.PGPASSFILE ?? '' });
    assert.match(plainSuperuser, /^failed: .*(no pg_hba\.conf entry|rejects connection|no encryption)/s, plainSuperuser);
    const named = makeTestTlsCa('a CA for a client certificate with a common name').client('etcd-client-with-cn', 'fleetpki-host');
    const withCn: FleetConfig = { ...config, tls: { ...config.tls, parts: { ...config.tls.parts, etcdClient: named } } };
    assert.throws(() => patroniDocument(withCn, config.sites.a), { code: 'SITES_PATRONI_ETCD_CLIENT' });
  });
});
