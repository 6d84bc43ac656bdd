import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { activateSite, createPool, isInRecovery, leaseRemainingMs, markSiteStandby } from '@fleetpki/store';
import { isClusterRunning, pgDataDir, standbyName, promoteCluster, rebuildAsStandby, reloadCluster, stopCluster, writeSettings } from './postgres-cluster.js';
import { redisPid } from './redis-server.js';
import { currentRoles, writeTopology } from './topology-file.js';

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
  let killed = 0;
  try {
    const postmaster = Number(readFileSync(join(pgDataDir(site), 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isInteger(postmaster) && postmaster > 0 && killPid(postmaster)) killed++;
  } catch {
    // not running
  }
  const backends = spawnSync('pgrep', ['-f', `postgres: fleetpki-${site.id}:`], { encoding: 'utf8' }).stdout ?? '';
  for (const pid of backends.split('\n').map(Number).filter((p) => p > 0)) if (killPid(pid)) killed++;
  const redis = redisPid(site);
  if (redis !== undefined && killPid(redis)) killed++;
  return killed;
}

async function withDb<T>(config: FleetConfig, site: SiteConfig, fn: (pool: ReturnType<typeof createPool>) => Promise<T>): Promise<T> {
  const pool = createPool(`postgres://${config.pgUser}@127.0.0.1:${site.pgPort}/${config.pgDatabase}`, { applicationName: 'fleetpki-failover', max: 1 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/**
 * Unplanned: promote the standby `site` (its data is complete up to the last acknowledged commit, by
 * synchronous replication), make it the active CA site with a new epoch and fence the other. The new
 * primary runs without a synchronous standby until the failed site is rebuilt (failback).
 */
export async function promoteStandby(config: FleetConfig, site: SiteConfig, note: string, log: Log = () => undefined): Promise<{ epoch: number; leaseWaitMs: number }> {
  if (!(await withDb(config, site, isInRecovery))) throw new FleetError('SITE_NOT_STANDBY', `site ${site.id} is not a standby; nothing to promote`);
  await promoteCluster(site);
  writeSettings(config, site, { role: 'primary' });
  await reloadCluster(site);
  writeTopology(config, { primary: site.id, rebuild: site.id === 'a' ? 'b' : 'a' });
  // The old site's processes may act until their lease runs out; the new site acts only afterwards.
  // The last renewal that reached this database bounds it (a renewal commits only once applied here).
  const other = site.id === 'a' ? 'b' : 'a';
  const leaseWaitMs = await withDb(config, site, (pool) => leaseRemainingMs(pool, other));
  if (leaseWaitMs > 0) {
    log(`site ${site.id}: waiting ${(leaseWaitMs / 1000).toFixed(1)} s for site ${other}'s lease to lapse`);
    await new Promise((r) => setTimeout(r, leaseWaitMs + 250));
  }
  const epoch = await withDb(config, site, (pool) => activateSite(pool, site.id, note));
  log(`site ${site.id}: promoted to primary, active CA site at epoch ${epoch}; the other site is fenced`);
  return { epoch, leaseWaitMs };
}

/**
 * Failback, first half: the former primary becomes the standby of the current one (pg_rewind, else a
 * base backup), synchronous replication is restored, and its CA role goes from fenced to standby.
 */
export async function rebuildFormerPrimary(config: FleetConfig, log: Log = () => undefined): Promise<'rewound' | 'copied'> {
  const { primary, standby } = currentRoles(config);
  const how = await rebuildAsStandby(config, standby, primary, log);
  writeTopology(config, { primary: primary.id });
  writeSettings(config, primary, { role: 'primary', syncStandby: standby });
  await reloadCluster(primary);
  await withDb(config, primary, (pool) => markSiteStandby(pool, standby.id, `rebuilt as standby of ${primary.id} (${how})`));
  log(`site ${standby.id}: rebuilt as synchronous standby of ${primary.id} (${how})`);
  return how;
}

/**
 * Planned switchover to the current standby with zero loss: the primary is shut down cleanly (its last
 * WAL, shutdown checkpoint included, reaches the synchronous standby first), the standby is promoted, and
 * the old primary is rewound into the new standby. Callers stop the old primary's services first.
 */
export async function switchover(config: FleetConfig, log: Log = () => undefined): Promise<{ from: string; to: string; epoch: number }> {
  const { primary, standby } = currentRoles(config);
  if (!(await isClusterRunning(standby))) throw new FleetError('SITE_DOWN', `site ${standby.id}'s PostgreSQL is not running; cannot switch over to it`);
  // Zero loss needs a standby that is streaming synchronously right now.
  const sync = await withDb(config, primary, async (pool) => (await pool.query<{ s: string }>(`SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [standbyName(standby)])).rows[0]?.s);
  if (sync !== 'sync') throw new FleetError('SWITCHOVER_STANDBY_NOT_IN_SYNC', `site ${standby.id} is not a streaming synchronous standby of ${primary.id} (${sync ?? 'not connected'}); a switchover now could lose data`);
  await stopCluster(primary, 'fast');
  log(`site ${primary.id}: PostgreSQL stopped cleanly`);
  const { epoch } = await promoteStandby(config, standby, `switchover from ${primary.id}`, log);
  await rebuildFormerPrimary(config, log);
  return { from: primary.id, to: standby.id, epoch };
}
