import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { approvedSwitchoverForDrill, runFailback } from '@fleetpki/drills';
import { createIssuerRuntime } from '@fleetpki/issuer-api';
import { agentLogFile, archiverState, currentRoles, readTopology, repositoryInfo, waitForRejoin, waitForSyncStandby } from '@fleetpki/sites';
import { createPool } from '@fleetpki/store';
import { createToken, ensureCa, siteAPool, type TestCa } from './support/ca.js';
import { ensureStandbyKeys } from './support/custody.js';
import { approvedRequest } from './support/dual-control.js';
import { cli, lastJson } from './support/cli.js';
import { ensureSites, waitFor } from './support/sites.js';

let config: FleetConfig;
let ca: TestCa;


before(async () => {
  config = await ensureSites();
  const pool = siteAPool(config);
  try {
    ca = await ensureCa(config, pool);
    // Site B needs its clone of the CA keys (3 of 5 custodian shares).
    await ensureStandbyKeys(pool);
  } finally {
    await pool.end();
  }
});

after(async () => {
  // Whatever happened above, leave site A active with B as its synchronous standby for the other test files.
  if (currentRoles(config).primary.id !== 'a') await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config) });
});

describe('site drills', () => {
  let failedOverAt = 0;
  /** Where B's agent log stood before the failover: its lines after that are this failover's. */
  let agentLogFrom = 0;
  it('failover: site A killed mid-batch; the agents and etcd fail over to B, which finishes it with RPO 0, no duplicates, OCSP served throughout, CRL numbers continuing', async () => {
    failedOverAt = Date.now();
    agentLogFrom = statSync(agentLogFile(config.sites.b)).size;
    const run = await cli(['drill', 'failover', '--devices', '20000', '--json'], {}, 300_000);
    assert.equal(run.code, 0, `${run.stderr.slice(0, 3000)}\n${run.stdout.slice(-2000)}`);
    const r = lastJson<Record<string, unknown>>(run.stdout);
    assert.deepEqual([r.from, r.to], ['a', 'b']);
    assert.equal(r.rpo_lost, 0);
    assert.equal(r.duplicate_serials, 0);
    assert.equal(r.batch_devices_not_exactly_one, 0);
    assert.equal(r.batch_complete, true);
    assert.equal(r.batch_devices, 20_000);
    assert.ok((r.enrolments_acknowledged as Record<string, number>).a! > 0 && (r.enrolments_acknowledged as Record<string, number>).b! > 0, 'enrolments acknowledged on both sides of the failover');
    assert.ok((r.ocsp_answered as number) > 0);
    // Every request answered; tryLater (the standby not vouching for a moment while behind a busy
    // primary) is an answer, and counted apart so the figure shows.
    console.log(`# drill: OCSP from the standby ${r.ocsp_answered} answered, ${r.ocsp_try_later} tryLater, ${r.ocsp_failed} failed`);
    console.log(`# drill (${config.databaseHa === 'patroni' ? 'Patroni' : 'site agent'}): RTO ${String(r.rto_s)} s, ${String(r.to)} active ${String(r.promote_s)} s after the kill was seen, RPO ${String(r.rpo_lost)}`);
    assert.equal(r.ocsp_failed, 0, `the standby answered every OCSP request during the drill (failures: ${JSON.stringify(r.ocsp_failures)})`);
    assert.equal(r.crl_numbers_continue, true);
    assert.ok(typeof r.rto_s === 'number' && r.rto_s > 0);
    assert.deepEqual(readTopology(config), { primary: 'b' });
  });

  it("site A's agent rewinds the killed primary into B's synchronous standby on its own, with pg_rewind", async () => {
    await waitForSyncStandby(config, config.sites.b, config.sites.a);
    const rejoin = await waitForRejoin(config, config.sites.a, failedOverAt);
    assert.equal(rejoin.how, 'rewound', `rejoined by ${rejoin.how}: ${rejoin.why ?? ''}`);
  });

  it('the WAL archive goes on from the new primary: B archives its timeline to the same repository (issue 35)', async () => {
    const check = await cli(['backup', 'check']);
    assert.equal(check.code, 0, check.stderr);
    const info = await repositoryInfo(config);
    const archiver = await archiverState(config);
    assert.equal(archiver.site, 'b');
    assert.ok(archiver.lastArchivedWal !== null && parseInt(archiver.lastArchivedWal.slice(0, 8), 16) > 1, `B archives on its own timeline (last ${archiver.lastArchivedWal})`);
    assert.equal(info.archive.max!.slice(0, 8), archiver.lastArchivedWal!.slice(0, 8), 'the repository holds the new timeline');
    // And the old timeline's segments B had received: what A might not have pushed before it died.
    const pushed = await waitFor('B\'s agent to push the old timeline\'s segments', async () => /WAL archive: (\d+) segment\(s\) of the old timeline pushed from here.*/.exec(readFileSync(agentLogFile(config.sites.b)).subarray(agentLogFrom).toString('utf8')) ?? undefined, 60_000, 500);
    assert.doesNotMatch(pushed[0], /FAILED/, pushed[0]);
    assert.ok(Number(pushed[1]) >= 1, `B pushed the segments it had received from A and marked done: ${pushed[0]}`);
  });

  it('failback: A rebuilt as standby of B, then switched back to active, under the same approval as a switchover', async () => {
    const refused = await cli(['drill', 'failback']);
    assert.match(refused.stderr, /DUAL_CONTROL_REQUIRED/, 'no switch back without an approval');
    assert.deepEqual(readTopology(config), { primary: 'b' }, 'and nothing was done');
    const active = createPool(config.sites.b.databaseUrl, { max: 2 });
    const approval = await approvedRequest(active, ca, 'site.switchover', 'administrator', {}).finally(() => active.end());
    const run = await cli(['drill', 'failback', '--json', '--approval', approval.id, '--token-file', approval.tokenFile]);
    assert.equal(run.code, 0, run.stderr);
    const r = lastJson<Record<string, unknown>>(run.stdout);
    assert.deepEqual([r.rebuilt, r.active, r.switched_back], ['a', 'a', true]);
    const history = createPool(config.sites.a.databaseUrl, { max: 1 });
    const recorded = await history.query<{ kind: string; from_site: string; to_site: string }>(`SELECT kind, from_site, to_site FROM drill_runs ORDER BY finished_at DESC LIMIT 1`).finally(() => history.end());
    assert.deepEqual(recorded.rows[0], { kind: 'failback', from_site: 'b', to_site: 'a' }, 'recorded in the drill history');
    assert.deepEqual(readTopology(config), { primary: 'a' });
    const status = await cli(['sites', 'status']);
    assert.match(status.stdout, /a\s+postgres :\d+\s+up\s+primary; standbys: site_b streaming\/sync/);
    assert.match(status.stdout, /b\s+postgres :\d+\s+up\s+hot standby/);
  });

  it('switchover there and back with enrolments running loses nothing', async () => {
    for (const [from, to] of [['a', 'b'], ['b', 'a']] as const) {
      // Dual control: two administrators on the active site request and approve it.
      const active = createPool(config.sites[from].databaseUrl, { max: 2 });
      const approval = await approvedRequest(active, ca, 'site.switchover', 'administrator', {}).finally(() => active.end());
      const run = await cli(['drill', 'switchover', '--json', '--approval', approval.id, '--token-file', approval.tokenFile]);
      assert.equal(run.code, 0, run.stderr);
      const r = lastJson<Record<string, unknown>>(run.stdout);
      assert.deepEqual([r.from, r.to, r.rpo_lost], [from, to, 0]);
      const acks = r.enrolments_acknowledged as Record<string, number>;
      assert.ok(acks[from]! > 0 && acks[to]! > 0);
    }
    assert.deepEqual(readTopology(config), { primary: 'a' });
  });

  it('from the API (a test deployment): two administrators, and of two concurrent starts exactly one real drill runs; the other is 409 DRILL_RUNNING', async () => {
    // test/drill-api.test.ts covers the refusals with a stand-in drill; this one kills site A for real.
    const stateDir = mkdtempSync(join(tmpdir(), 'fleetpki-drills-api-'));
    const runtime = await createIssuerRuntime({ ...config, site: 'a', stateDir, console: { ...config.console, drills: true } }, { logger: false, hsmSessions: 1, poolSize: 4 });
    try {
      await runtime.app.listen({ host: '127.0.0.1', port: 0 });
      const url = `http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
      const pool = siteAPool(config);
      const admins = await Promise.all([0, 1, 2].map((i) => createToken(pool, 'administrator', null, `drills-api-admin-${i}-${randomUUID().slice(0, 8)}`))).finally(() => pool.end());
      const call = async (token: string, path: string, body?: unknown) => {
        const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const alone = await call(admins[0]!, '/v1/drills', { kind: 'failover', devices: 2_000 });
      assert.deepEqual([alone.status, alone.body.code], [403, 'DUAL_CONTROL_REQUIRED']);
      const approve = async (requester: string, approver: string) => {
        const requested = await call(requester, '/v1/approvals', { action: 'drill.failover' });
        assert.equal(requested.status, 201, JSON.stringify(requested.body));
        assert.equal((await call(approver, `/v1/approvals/${String(requested.body.id)}/approve`)).status, 200);
        return String(requested.body.id);
      };
      const approvals = [await approve(admins[0]!, admins[1]!), await approve(admins[1]!, admins[2]!)];
      failedOverAt = Date.now();
      const answers = await Promise.all(approvals.map((approval, i) => call(admins[i]!, '/v1/drills', { kind: 'failover', devices: 2_000, approval })));
      assert.deepEqual(answers.map((a) => a.status).sort(), [202, 409], JSON.stringify(answers.map((a) => a.body)));
      assert.equal(answers.find((a) => a.status === 409)!.body.code, 'DRILL_RUNNING');
      const started = answers.find((a) => a.status === 202)!.body as { pid: number; log: string };
      await waitFor(
        'the failover drill started from the API to end',
        async () => {
          try {
            process.kill(started.pid, 0);
            return undefined;
          } catch {
            return true;
          }
        },
        300_000,
        500,
      );
      const log = readFileSync(started.log, 'utf8');
      assert.match(log, /rpo_lost\s+0\b/, log.slice(-3000));
      assert.deepEqual(readTopology(config), { primary: 'b' }, 'the one drill failed site A over to B');
      const history = createPool(config.sites.b.databaseUrl, { max: 1 });
      const runs = await history.query<{ n: number }>(`SELECT count(*)::int AS n FROM drill_runs WHERE kind = 'failover' AND finished_at > to_timestamp($1 / 1000.0)`, [failedOverAt]).finally(() => history.end());
      assert.equal(runs.rows[0]!.n, 1, 'one failover drill recorded');
    } finally {
      // Its site's database was killed under it: closing may find nothing to say goodbye to.
      await Promise.race([runtime.close().catch(() => undefined), new Promise((r) => setTimeout(r, 15_000))]);
      rmSync(stateDir, { recursive: true, force: true });
    }
    await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config), failedOverAt });
    assert.deepEqual(readTopology(config), { primary: 'a' });
  });
});
