import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { approvedSwitchoverForDrill, runFailback } from '@fleetpki/drills';
import { currentRoles, readTopology, waitForRejoin, waitForSyncStandby } from '@fleetpki/sites';
import { createPool } from '@fleetpki/store';
import { ensureCa, siteAPool, type TestCa } from './support/ca.js';
import { ensureStandbyKeys } from './support/custody.js';
import { approvedRequest } from './support/dual-control.js';
import { cli } from './support/cli.js';
import { ensureSites } from './support/sites.js';

let config: FleetConfig;
let ca: TestCa;

/** The last line of a --json drill: its report. */
function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

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
  it('failover: site A killed mid-batch; the agents and etcd fail over to B, which finishes it with RPO 0, no duplicates, OCSP served throughout, CRL numbers continuing', async () => {
    failedOverAt = Date.now();
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
    assert.equal(r.ocsp_failed, 0, 'the standby answered every OCSP request during the drill');
    assert.equal(r.crl_numbers_continue, true);
    assert.ok(typeof r.rto_s === 'number' && r.rto_s > 0);
    assert.deepEqual(readTopology(config), { primary: 'b' });
  });

  it("site A's agent rewinds the killed primary into B's synchronous standby on its own, with pg_rewind", async () => {
    await waitForSyncStandby(config, config.sites.b, config.sites.a);
    const rejoin = await waitForRejoin(config, config.sites.a, failedOverAt);
    assert.equal(rejoin.how, 'rewound', `rejoined by ${rejoin.how}: ${rejoin.why ?? ''}`);
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
});
