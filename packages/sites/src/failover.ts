/* eslint-disable max-lines -- the local simulation's failover and failback steps in their order, read top to bottom during a drill; issue 35 replaces them with Patroni's */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentIdentity, CaSiteReader, openConsensus, type ConsensusClient, type EtcdIdentity, readRejoin, revokeLeaderLease, setSwitchover, setUnprotected, type RejoinRecord } from '@fleetpki/consensus';
import { FleetError, type FleetConfig, type SiteConfig, type SiteId } from '@fleetpki/core';
import { activateSite, isInRecovery, markSiteStandby } from '@fleetpki/store';
import { caDatabases, withOwnerPool } from './ca-databases.js';
import { pgDataDir, standbyName, promoteCluster, rebuildAsStandby, reloadCluster, waitUntilStreaming, writeSettings } from './postgres-cluster.js';
import { killPatroni, patroniCall } from './patroni.js';
import { redisPid } from './redis-server.js';
import { readTopology, writeTopology } from './topology-file.js';

type Log = (line: string) => void;

function killPid(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/**
 * A site dies: SIGKILL its PostgreSQL (postmaster and every backend, named by cluster_name) and its
 * Redis. Its service processes belong to whoever started them (the drill kills those itself).
 */
export function killSiteInfrastructure(site: SiteConfig): number {
  // Patroni first (when it runs the site's PostgreSQL): it would otherwise restart PostgreSQL in place.
  let killed = killPatroni(site);
  killed += killPostgres(site);
  const redis = redisPid(site);
  if (redis !== undefined && killPid(redis)) killed++;
  return killed;
}

/**
 * SIGKILL a site's PostgreSQL alone (postmaster and every backend); its services and Redis live on.
 * The backends are the postmaster's children, listed once it is stopped (SIGSTOP: it forks none after
 * the list): matching them by cluster_name (`postgres: fleetpki-a: ...`) would also kill another
 * checkout's site A on the same machine. A pid file whose number now belongs to another process (a
 * postmaster that died long ago) kills nothing.
 */
export function killPostgres(site: SiteConfig): number {
  const dataDir = pgDataDir(site);
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return 0; // not running
  }
  if (!Number.isInteger(postmaster) || postmaster <= 0 || !isPostmasterOf(postmaster, dataDir)) return 0;
  try {
    process.kill(postmaster, 'SIGSTOP');
  } catch {
    return 0; // ended meanwhile
  }
  const backends = postgresChildren(postmaster);
  let killed = killPid(postmaster) ? 1 : 0;
  for (const pid of backends) if (killPid(pid)) killed++;
  return killed;
}

/** Whether `pid` is the postmaster of `dataDir` (its command line names the folder). */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir);
  } catch {
    return false;
  }
}

/** The processes a postmaster started (its backends and auxiliary processes). */
export function postgresChildren(postmaster: number): number[] {
  const out = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout ?? '';
  return out.split('\n').map(Number).filter((p) => p > 0);
}

/**
 * Waits until `site` is the active CA site: it leads in etcd, its database is the primary and the site
 * is active in `config.pgDatabase` there. Returns the epoch.
 */
export async function waitForActiveSite(config: FleetConfig, site: SiteConfig, timeoutMs = 120_000): Promise<number> {
  const client = openConsensus(config, 'service');
  const reader = new CaSiteReader(client, config);
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  try {
    for (;;) {
      try {
        const state = await reader.read();
        if (state.leader?.site !== site.id) last = state.leader ? `site ${state.leader.site} leads` : 'no site leads';
        else {
          const row = await withOwnerPool(config, site, config.pgDatabase, async (pool) => ((await isInRecovery(pool)) ? undefined : (await pool.query<{ role: string; epoch: string }>('SELECT role, epoch::text FROM site_state WHERE site = $1', [site.id])).rows[0]));
          if (row?.role === 'active') return Number(row.epoch);
          last = `site ${site.id} leads; its database is ${row ? `at role ${row.role}` : 'still a standby'}`;
        }
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new FleetError('SITE_TAKEOVER_TIMEOUT', `site ${site.id} did not become the active CA site within ${timeoutMs / 1000} s (${last}); see ${join(site.dir, 'agent.log')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}

/** Waits until `standby` streams as `primary`'s synchronous standby (writes flow again, zero loss possible). */
export async function waitForSyncStandby(config: FleetConfig, primary: SiteConfig, standby: SiteConfig, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not connected';
  for (;;) {
    const sync = await withOwnerPool(config, primary, 'postgres', async (pool) => (await pool.query<{ s: string }>(`SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [standbyName(standby)])).rows[0]?.s).catch((err: Error) => `error: ${err.message}`);
    if (sync === 'sync') return;
    last = sync ?? 'not connected';
    if (Date.now() > deadline) throw new FleetError('SITE_STANDBY_NOT_IN_SYNC', `site ${standby.id} is not streaming as ${primary.id}'s synchronous standby after ${timeoutMs / 1000} s (${last}); see ${join(standby.dir, 'agent.log')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A planned switchover, the way operations run it: the leader's agent is asked (in etcd) to hand the
 * CA-site role to the standby; it does so only while the standby streams synchronously (zero loss),
 * stopping its own database cleanly first. Waits until the other site is active and the old one is its
 * synchronous standby again.
 */
export async function switchover(config: FleetConfig, requestedBy: string, log: Log = () => undefined): Promise<{ from: SiteId; to: SiteId; epoch: number }> {
  // The operator's credential may write `switchover`: the leader's agent hands over only to a standby
  // streaming synchronously (zero loss), so a request is no unsafe decision by itself.
  const client = openConsensus(config, 'operator');
  try {
    const state = await new CaSiteReader(client, config).read();
    if (!state.leader) throw new FleetError('SITE_NO_LEADER', 'no site leads the CA (etcd); start the site agents (`pnpm sites up`)');
    const from = config.sites[state.leader.site];
    const to = config.sites[from.id === 'a' ? 'b' : 'a'];
    await setSwitchover(client, config, { to: to.id, requestedBy, at: new Date().toISOString() });
    log(`asked site ${from.id}'s agent to hand over to site ${to.id}`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const now = await new CaSiteReader(client, config).read().catch(() => undefined);
      if (now?.switchover?.refused) {
        await setSwitchover(client, config, undefined);
        throw new FleetError('SWITCHOVER_STANDBY_NOT_IN_SYNC', now.switchover.refused);
      }
      if (now?.leader?.site === to.id) break;
      if (Date.now() > deadline) {
        await setSwitchover(client, config, undefined).catch(() => undefined);
        throw new FleetError('SWITCHOVER_TIMEOUT', `site ${from.id}'s agent did not hand over within 60 s; see ${join(from.dir, 'agent.log')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const epoch = await waitForActiveSite(config, to);
    log(`site ${to.id}: active CA site at epoch ${epoch}`);
    await waitForSyncStandby(config, to, from);
    log(`site ${from.id}: rejoined as synchronous standby of ${to.id}`);
    return { from: from.id, to: to.id, epoch };
  } finally {
    client.close();
  }
}

/**
 * The elected site takes the CA over (site agent): its standby is promoted, keeps the other site as its
 * synchronous standby (writes wait until that site is back: strict, no silent loss of RPO 0), and the
 * site is activated with a new epoch in every CA database on the cluster. The activation commits locally
 * (the standby it would wait for is the site that just failed). Returns the highest new epoch.
 */
export async function takeOver(config: FleetConfig, site: SiteConfig, note: string): Promise<number> {
  const other = config.sites[site.id === 'a' ? 'b' : 'a'];
  if (await withOwnerPool(config, site, 'postgres', isInRecovery)) await promoteCluster(site);
  writeSettings(config, site, { role: 'primary', syncStandby: other });
  await reloadCluster(site);
  return activateCaSite(config, site, note);
}

/**
 * The site whose database is now the primary becomes the active CA site: the topology file names it, and
 * it is activated with a new epoch in every CA database on the cluster. The activation commits locally
 * (the standby it would wait for is the site that just failed). Returns the highest new epoch.
 */
export async function activateCaSite(config: FleetConfig, site: SiteConfig, note: string): Promise<number> {
  writeTopology(config, { primary: site.id });
  let epoch = 0;
  for (const database of await caDatabases(config, site)) {
    epoch = Math.max(
      epoch,
      await withOwnerPool(config, site, database, async (pool) => {
        const client = await pool.connect();
        try {
          await client.query('SET synchronous_commit = local');
          return await activateSite(client, site.id, note);
        } finally {
          client.release();
        }
      }),
    );
  }
  return epoch;
}

/**
 * A site that is not the leader and whose database is down or a stale primary becomes the leader's
 * standby: pg_rewind (after crash recovery), a base backup only if rewinding is impossible. Refuses to
 * touch the local data while the leader's database cannot be reached (there would be nothing to copy).
 */
export async function rejoinAsStandby(config: FleetConfig, site: SiteConfig, leader: SiteConfig, log: Log = () => undefined): Promise<'rewound' | 'copied'> {
  const leaderIsPrimary = await withOwnerPool(config, leader, 'postgres', async (pool) => !(await isInRecovery(pool))).catch(() => false);
  if (!leaderIsPrimary) throw new FleetError('SITE_LEADER_UNREACHABLE', `site ${leader.id} leads but its PostgreSQL is not a reachable primary yet; site ${site.id} waits before rejoining`);
  return rebuildAsStandby(config, site, leader, log);
}

/** On the leader, once the other site streams as its synchronous standby again: it is the standby (no longer fenced) in every CA database. */
export async function acknowledgeStandby(config: FleetConfig, leader: SiteConfig, standby: SiteConfig): Promise<void> {
  for (const database of await caDatabases(config, leader)) {
    await withOwnerPool(config, leader, database, async (pool) => {
      const { rows } = await pool.query<{ role: string }>('SELECT role FROM site_state WHERE site = $1', [standby.id]);
      if (rows[0]?.role !== 'fenced') return;
      // Committed locally: a standby that stalls right now must not hang the agent's step (the operators'
      // remedy for that stall, unprotect, is applied by that same step).
      const client = await pool.connect();
      try {
        await client.query('SET synchronous_commit = local');
        await markSiteStandby(client, standby.id, `streams as ${leader.id}'s synchronous standby again`);
      } finally {
        client.release();
      }
    });
  }
}

/** How `site` last rejoined as the standby, as its agent recorded it in etcd. */
export async function lastRejoin(config: FleetConfig, site: SiteConfig): Promise<RejoinRecord | undefined> {
  const client = openConsensus(config, 'service');
  try {
    return await readRejoin(client, config, site.id);
  } finally {
    client.close();
  }
}

/**
 * How `site` rejoined as the standby at or after `since` (ms since the epoch). The agent records the
 * rejoin in etcd only once its PostgreSQL streams again, so a caller that saw it streaming can still be
 * a moment ahead of the record: this waits for it rather than read a stale one (or none).
 */
export async function waitForRejoin(config: FleetConfig, site: SiteConfig, since: number, timeoutMs = 30_000): Promise<RejoinRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = await lastRejoin(config, site).catch(() => undefined);
    if (record && Date.parse(record.at) >= since) return record;
    if (Date.now() > deadline) {
      throw new FleetError(
        'SITE_REJOIN_NOT_RECORDED',
        `site ${site.id}'s agent recorded no rejoin since ${new Date(since).toISOString()} within ${timeoutMs / 1000} s (last: ${record ? `${record.how} at ${record.at}` : 'none'}); see ${join(site.dir, 'agent.log')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A manual failover to `to` (the operator's `sites failover`). While the active site still holds its
 * lease in etcd (its agent alive and in the majority) this is refused unless forced, and forcing (two
 * people, checked by the caller) revokes that lease: the site's processes stop acting within their last
 * read of etcd, and `to`'s agent, elected next, waits one lease time before it promotes. Never to a
 * standby of a primary that ran unprotected (it may lack acknowledged commits).
 *
 * Revoking a lease takes an agent's etcd credential (write permission on the lease's key): `to`'s agent
 * runs this when it executes a recorded two-person order (site-orders.ts); drills and tests, which hold
 * the state folder as the host's infrastructure tooling, run it as that agent too.
 */
export async function failoverTo(config: FleetConfig, to: SiteConfig, options: { force: boolean; log?: Log; candidacyTimeoutMs?: number }): Promise<{ epoch: number; revokedLeaseOf: SiteId | undefined }> {
  const log = options.log ?? (() => undefined);
  const client = openConsensus(config, options.force ? agentIdentity(to.id) : 'service');
  try {
    const state = await new CaSiteReader(client, config).read();
    if (state.leader?.site === to.id) return { epoch: await waitForActiveSite(config, to), revokedLeaseOf: undefined };
    if (state.unprotected) {
      throw new FleetError('SITE_STANDBY_NOT_ELIGIBLE', `the primary has run without its synchronous standby since ${state.unprotected.since} (by ${state.unprotected.by}): site ${to.id} may lack acknowledged commits and is not promoted`);
    }
    let revokedLeaseOf: SiteId | undefined;
    if (state.leader) {
      if (!options.force) {
        throw new FleetError('SITE_LEASE_HELD', `site ${state.leader.site} holds the CA-site lease (${state.leader.ttlSeconds} s left, renewed by its agent): it is alive and in the majority. A failover now needs --force and two administrators (--token-file and --second-token-file)`);
      }
      // Only with `to` queued in the election: revoked while `to` was not a candidate yet (a standby a
      // moment after rejoining), the old leader's agent campaigned again first and led on.
      await waitForCandidacy(client, config, to, options.candidacyTimeoutMs);
      const now = await new CaSiteReader(client, config).read();
      if (now.leader?.lease !== state.leader.lease) throw new FleetError('SITE_LEADER_CHANGED', `the leader changed while waiting for site ${to.id}'s candidacy (now ${now.leader ? `site ${now.leader.site}` : 'nobody'}); nothing was revoked, ask again`);
      if (config.databaseHa === 'patroni') {
        // Patroni's leader key is Patroni's: its own manual failover, which promotes only the member in sync.
        log(`asking Patroni to fail over from site ${state.leader.site} to site ${to.id}`);
        const r = await patroniCall(config, to, 'POST', '/failover', { candidate: standbyName(to) });
        if (r.status !== 200) throw new FleetError('SITE_FAILOVER_REFUSED', `Patroni refused the failover to site ${to.id}: ${r.status} ${r.text.trim()}`);
      } else {
        log(`revoking site ${state.leader.site}'s lease ${state.leader.lease} in etcd (site ${to.id} is queued behind it)`);
        await revokeLeaderLease(client, state.leader.lease);
      }
      revokedLeaseOf = state.leader.site;
    } else log(`no site leads; site ${to.id}'s agent campaigns on its own within ${2 * config.consensus.ttlSeconds} s`);
    const epoch = await waitForActiveSite(config, to);
    log(`site ${to.id}: active CA site at epoch ${epoch}`);
    return { epoch, revokedLeaseOf };
  } finally {
    client.close();
  }
}

/** Waits until `site`'s agent campaigns (queued in the CA-site election); refuses after `timeoutMs`. */
async function waitForCandidacy(client: ConsensusClient, config: FleetConfig, site: SiteConfig, timeoutMs = 30_000): Promise<void> {
  const reader = new CaSiteReader(client, config);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await reader.read().catch(() => undefined);
    if (state?.candidates.some((c) => c.site === site.id)) return;
    if (Date.now() > deadline) {
      throw new FleetError('SITE_NOT_CANDIDATE', `site ${site.id} is not a candidate for the CA-site role after ${timeoutMs / 1000} s (its agent campaigns only while its database streams as the standby and the primary is protected); nothing was revoked; see ${join(site.dir, 'agent.log')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readSyncStandbyNames(config: FleetConfig, site: SiteConfig): Promise<string | undefined> {
  return withOwnerPool(config, site, 'postgres', async (pool) => (await pool.query<{ s: string }>(`SELECT current_setting('synchronous_standby_names') AS s`)).rows[0]!.s.trim()).catch(() => undefined);
}

/**
 * Runs the active site without its synchronous standby (asynchronous replication): commits stop
 * waiting for a standby that is gone, at the price of RPO 0. An operator's two-person decision (checked
 * by the caller), recorded in etcd, where the standby's agent reads it and stops being a candidate (it
 * may lack acknowledged commits from now on); the leader's agent clears synchronous_standby_names.
 * Waits until the primary runs asynchronously. Undone by `protect`.
 *
 * Writes `unprotected` with the leader's agent credential: its agent runs this when it executes a
 * recorded two-person order (site-orders.ts); tests, as infrastructure tooling, run it as that agent too.
 */
export async function unprotect(config: FleetConfig, by: string, log: Log = () => undefined): Promise<{ site: SiteId; since: string }> {
  const state = await readCaSite(config);
  if (!state.leader) throw new FleetError('SITE_NO_LEADER', 'no site leads the CA (etcd); nothing to unprotect');
  const client = openConsensus(config, agentIdentity(state.leader.site));
  try {
    const site = config.sites[state.leader.site];
    const since = state.unprotected?.since ?? new Date().toISOString();
    if (!state.unprotected) await setUnprotected(client, config, { since, by });
    log(`recorded in etcd: site ${site.id} runs unprotected since ${since} (by ${by}); waiting for its agent`);
    await waitForSyncSetting(config, site, false);
    log(`site ${site.id}: commits no longer wait for a synchronous standby`);
    return { site: site.id, since };
  } finally {
    client.close();
  }
}

/**
 * Undoes `unprotect` in two steps (issue 33 §4). First the key says "restoring": the leader's agent makes
 * the primary's commits wait for the other site again, while the standby still vouches for nothing and
 * may not be promoted. Then, once the standby has replayed everything the primary had written by then
 * (every commit acknowledged while unprotected lies before that point), the key goes and the standby
 * vouches and is a candidate again. A standby that does not catch up (stalled, cut off) leaves the key
 * in place and this fails after `replayTimeoutMs`, naming it; running it again resumes. With nobody
 * leading (the primary is gone while unprotected), the key goes at once, making a standby eligible that
 * may lack commits acknowledged meanwhile: the caller asks two people for that.
 *
 * Writes with an agent's etcd credential (`as`; by default the leader's, or with nobody leading the
 * agent of the site the topology file names primary): the leader's agent runs this when it executes a
 * recorded order; with nobody leading no database can record one, and the CLI acts as an agent itself.
 */
export async function protect(config: FleetConfig, log: Log = () => undefined, options: { replayTimeoutMs?: number; as?: EtcdIdentity } = {}): Promise<{ site: SiteId | undefined; wasUnprotectedSince: string | undefined }> {
  const state = await readCaSite(config);
  if (!state.unprotected) return { site: state.leader?.site, wasUnprotectedSince: undefined };
  const client = openConsensus(config, options.as ?? agentIdentity(state.leader?.site ?? readTopology(config).primary));
  try {
    if (state.leader) {
      const primary = config.sites[state.leader.site];
      const standby = config.sites[state.leader.site === 'a' ? 'b' : 'a'];
      if (!state.unprotected.restoring) await setUnprotected(client, config, { ...state.unprotected, restoring: true });
      log(`recorded in etcd: protection being restored (unprotected since ${state.unprotected.since}); site ${standby.id} vouches for nothing until it has caught up`);
      await waitForSyncSetting(config, primary, true);
      log(`site ${primary.id}: commits wait for site ${standby.id} as the synchronous standby again`);
      try {
        await waitUntilStreaming(config, standby, primary, options.replayTimeoutMs ?? 60_000);
      } catch (err) {
        throw new FleetError('SITE_STANDBY_BEHIND', `site ${standby.id} has not replayed what site ${primary.id} acknowledged while unprotected (${(err as Error).message}); protection stays "restoring": site ${standby.id} neither vouches nor may be promoted. Run \`sites protect\` again once it streams`);
      }
      log(`site ${standby.id} has replayed everything site ${primary.id} had written`);
    }
    await setUnprotected(client, config, undefined);
    log(`cleared in etcd: the primary runs with its synchronous standby again, which vouches again`);
    return { site: state.leader?.site, wasUnprotectedSince: state.unprotected.since };
  } finally {
    client.close();
  }
}

/** One read of the CA-site role with the services' (read-only) credential. */
async function readCaSite(config: FleetConfig) {
  const client = openConsensus(config, 'service');
  try {
    return await new CaSiteReader(client, config).read();
  } finally {
    client.close();
  }
}

async function waitForSyncSetting(config: FleetConfig, site: SiteConfig, required: boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = await readSyncStandbyNames(config, site);
    if (names !== undefined && (names !== '') === required) return;
    if (Date.now() > deadline) throw new FleetError('SITE_AGENT_TIMEOUT', `site ${site.id}'s agent did not ${required ? 'restore' : 'clear'} synchronous_standby_names within ${timeoutMs / 1000} s; see ${join(site.dir, 'agent.log')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
