import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openRoleSiteRuntime, type RoleSiteRuntime } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { DAEMON_SESSION_WAITS, MIN_PASS_DEADLINE_MS, openSiteDaemons, type SiteDaemons } from '@fleetpki/daemons';
import { startService, stopProcess } from '@fleetpki/sites';
import { JOB_LOCK_CLASS, createPool, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * Two daemons processes of one site (a second host, a restart overlapping the old process): each job
 * runs in one of them only, by a PostgreSQL advisory lock per job held on the leader's own connection.
 * When the leader goes, or its database session is killed, the other instance takes the job at its
 * next check; the old leader, its session gone, does not run it again until it has the lock back.
 * Against site A's real PostgreSQL; two openSiteDaemons in this process stand for the two processes
 * (each opens its own connections, as a process would).
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
const JOB = 'online-intents';
let config: FleetConfig;
let pool: Pool;
const opened: SiteDaemons[] = [];

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
});

after(async () => {
  for (const d of opened) await d.close().catch(() => undefined);
  await pool?.end();
});

/** An instance of site A's daemons; `mayAct` stands for its view of the site (its lease), true by default. */
async function instance(mayAct?: () => boolean): Promise<SiteDaemons> {
  const site = { ...config, site: 'a' as const };
  const seams = mayAct
    ? { openRoleSite: async () => ({ ...(await openRoleSiteRuntime(site, { service: 'issuer', pool: { max: 2 }, purpose: 'daemons' })), guard: { canAct: async () => mayAct() } }) as RoleSiteRuntime }
    : undefined;
  const d = await openSiteDaemons(site, { only: [JOB], logger: false, ...(seams ? { seams } : {}) });
  opened.push(d);
  return d;
}

/** One tick of an instance: whether it ran a pass of the job (not skipped as a follower, nor stopped by a failed check). */
async function ran(d: SiteDaemons): Promise<boolean> {
  const before = d.stats()[0]!.passes;
  await d.runOnce();
  return d.stats()[0]!.passes > before;
}

/** The leadership connections of site A's daemons (application name ...daemon-leadership). */
async function leadershipSessions(): Promise<number[]> {
  const { rows } = await pool.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name LIKE '%daemon-leadership%' AND datname = current_database()`);
  return rows.map((r) => r.pid);
}

/** Backends of site A's daemons pools waiting for a heavyweight lock. */
async function waitingDaemonBackends(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'fleetpki-issuer-a-daemons' AND datname = current_database() AND wait_event_type = 'Lock'`);
  return rows[0]!.n;
}

async function lockHolder(): Promise<number | undefined> {
  const { rows } = await pool.query<{ pid: number }>(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::oid`, [JOB_LOCK_CLASS]);
  return rows[0]?.pid;
}

describe('one leader per job among a site\'s daemons instances', () => {
  it('only one of two instances runs the job; closing it hands the job to the other', async () => {
    const first = await instance();
    const second = await instance();
    assert.equal(await ran(first), true, 'the first instance takes the job');
    assert.equal(await ran(second), false, 'the second is skipped: not the leader');
    assert.equal(await ran(first), true, 'the leader keeps it');
    assert.equal(await ran(second), false);
    assert.equal(second.stats()[0]!.skippedNotLeader, 2);
    assert.ok((await leadershipSessions()).includes((await lockHolder())!), 'the lock is held by a leadership session');

    await first.close();
    opened.splice(opened.indexOf(first), 1);
    assert.equal(await ran(second), true, 'the leader gone, the other instance takes the job at its next check');
  });

  it('a leader whose session is killed loses the job to the other instance, and does not run it again without the lock', async () => {
    for (const d of opened.splice(0)) await d.close();
    const leader = await instance();
    assert.equal(await ran(leader), true);
    const follower = await instance();
    assert.equal(await ran(follower), false);
    const holder = await lockHolder();
    assert.ok(holder !== undefined, 'a session holds the job lock');
    // Waits (up to 5 s) until the backend has gone, its locks with it.
    assert.equal((await pool.query<{ t: boolean }>('SELECT pg_terminate_backend($1, 5000) AS t', [holder])).rows[0]!.t, true);
    // The session is gone with its lock: the follower takes the job.
    assert.equal(await ran(follower), true, 'the follower takes the job once the leader\'s session is gone');
    // The old leader's next check finds its session gone (a failed check, not a pass), then it is a follower.
    assert.equal(await ran(leader), false, 'the old leader does not run the job on a lock it lost');
    assert.equal(await ran(leader), false);
    assert.equal(await ran(follower), true);
    assert.ok(leader.stats()[0]!.skippedNotLeader >= 1, 'the old leader now follows');
  });

  it('a leader that may no longer act (its lease lost, the others\' not) gives the job up to one that may', async () => {
    for (const d of opened.splice(0)) await d.close();
    let leaderActs = true;
    const leader = await instance(() => leaderActs);
    assert.equal(await ran(leader), true);
    const other = await instance();
    assert.equal(await ran(other), false, 'the leader holds the job');
    leaderActs = false;
    assert.equal(await ran(leader), false, 'it may not act: no pass');
    assert.equal(await ran(other), true, 'the other instance takes the job it gave up');
    leaderActs = true;
    assert.equal(await ran(leader), false, 'acting again, it follows the new leader');
  });

  it('a daemons process whose pass hangs past its deadline kills itself (DAEMONS_PASS_STUCK); its job lock and its sessions go with it', async () => {
    for (const d of opened.splice(0)) await d.close();
    // The job's query waits behind a table lock the test holds, longer than the deadline (the minimum,
    // 30 s, under the pools' one-minute lock_timeout): a pass that does not return, as an HSM call that
    // hangs would not.
    const blocker = await pool.connect();
    let child: ReturnType<typeof startService> | undefined;
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE issuance_intents IN ACCESS EXCLUSIVE MODE');
      child = startService(config, 'daemons', { FLEETPKI_SITE: 'a', FLEETPKI_DAEMONS: JOB, FLEETPKI_DAEMONS_PASS_DEADLINE_MS: String(MIN_PASS_DEADLINE_MS), FLEETPKI_METRICS_PORT: '0' }, { output: 'pipe' });
      let output = '';
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child!.once('exit', (code, signal) => resolve({ code, signal })));
      // While its pass hangs, the process leads the job: no other instance may run it.
      let held: number | undefined;
      for (let i = 0; i < 300 && held === undefined; i++) {
        held = await lockHolder();
        if (held === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(held !== undefined, `the process took the job's lock: ${output}`);
      await waitFor('its pass waiting behind the lock', async () => ((await waitingDaemonBackends()) === 1 ? true : undefined), 20_000, 100);
      const end = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 120_000))]);
      // SIGKILL, not exit(): an exit would wait for a thread stuck in the HSM. systemd restarts it (Restart=on-failure).
      assert.deepEqual(end, { code: null, signal: 'SIGKILL' }, `the process kills itself: ${output}`);
      assert.match(output, new RegExp(`DAEMONS_PASS_STUCK: a pass of ${JOB} has run for over ${MIN_PASS_DEADLINE_MS} ms`));
      child = undefined;
      // Its idle leadership session sees the connection close at once, and the lock goes with it; the
      // backend waiting in the lock queue notices its client is gone within client_connection_check_interval,
      // rather than waiting on and then committing its statement for nobody.
      await waitFor('the job lock released', async () => ((await lockHolder()) === undefined ? true : undefined), 20_000, 100);
      await waitFor('no backend of the dead process left waiting', async () => ((await waitingDaemonBackends()) === 0 ? true : undefined), 20_000, 200);
    } finally {
      if (child) await stopProcess(child).catch(() => undefined);
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
    const other = await instance();
    assert.equal(await ran(other), true, 'another instance takes the job');
  });

  it("the daemons' sessions give up a lock wait after a minute and a statement after five, and check for a vanished client every five seconds", async () => {
    const daemonsPool = createPool(config.sites.a.databaseUrl, { max: 1, waits: DAEMON_SESSION_WAITS });
    try {
      const show = async (name: string) => (await daemonsPool.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name];
      assert.equal(await show('lock_timeout'), '1min');
      assert.equal(await show('statement_timeout'), '5min');
      assert.equal(await show('client_connection_check_interval'), '5s');
    } finally {
      await daemonsPool.end();
    }
  });
});
