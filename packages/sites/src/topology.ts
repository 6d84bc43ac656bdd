import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { SITE_IDS, type FleetConfig, type SiteConfig, type SiteId } from '@fleetpki/core';
import { probeRedis, redisLink } from '@fleetpki/queue';
import { createPool, pgLinkSecurity, readDatabaseRole } from '@fleetpki/store';
import { ensureRootToken, ensureTokens, listTokens, tokensOfSite } from './hsm-tokens.js';
import { ensurePrimary, ensureStandby, isClusterRunning, pgDataDir, stopCluster } from './postgres-cluster.js';
import { ensureEtcd, etcdHealth, stopEtcd } from './etcd-cluster.js';
import { ensureRedis, stopRedis } from './redis-server.js';
import { agentLogFile, agentPid, ensureAgent, stopAgent } from './site-agent-process.js';
import { CaSiteReader, openConsensus, readRejoin, type RejoinRecord } from '@fleetpki/consensus';
import { ensureStateDir } from './state-dir.js';
import { ensureStanza } from './backups.js';
import { backupStatusRows, type BackupStatus } from './backup-status.js';
import { currentRoles } from './topology-file.js';
import { ensureNetns } from './netns.js';
import { patroniSitesDown, patroniSitesUp } from './patroni-sites.js';
import { patroniCluster, type PatroniMember } from './patroni.js';
import { hostOwnFile, writeDeploymentFile } from './deployment-file.js';
import { stopLocalPrometheus } from './local-prometheus.js';

export type Log = (line: string) => void;

/** Brings both local sites up; every step is a no-op when its part already runs. */
export interface SitesUpOptions {
  /**
   * Each site's own configuration file (one file per host, as on real hosts): its agent reads it. Without
   * them `sites up` writes one file for the whole simulation (writeDeploymentFile) that every process reads.
   */
  readonly hostFiles?: Readonly<Record<SiteId, string>>;
}

export async function sitesUp(config: FleetConfig, log: Log = () => undefined, options: SitesUpOptions = {}): Promise<void> {
  ensureStateDir(config.stateDir);
  // A deployment's own folder, when it is not the state folder: its secrets live there (no service but its own reads it).
  if (config.deploymentDir !== config.stateDir) mkdirSync(config.deploymentDir, { recursive: true, mode: 0o700 });
  // The topology as a configuration file: what the agents (and services started here) read.
  if (options.hostFiles) log(`configuration: ${Object.values(options.hostFiles).join(', ')} (one per host)`);
  else if (hostOwnFile(config)) log(`configuration: ${hostOwnFile(config)} (this host's own)`);
  else {
    const file = writeDeploymentFile(config);
    log(`configuration: ${file.path}${file.written ? ' (written)' : ''}`);
  }
  for (const site of [config.sites.a, config.sites.b]) {
    const created = await ensureTokens(config, site);
    log(`site ${site.id}: HSM token ${tokensOfSite(config, site).join(', ')}${created.length ? ` (initialised ${created.join(', ')})` : ''}`);
  }
  const root = await ensureRootToken(config);
  log(
    root === 'legacy'
      ? `offline root: token ${config.rootTokenLabel} is still inside site a's HSM and opens with its PIN; move it with \`pnpm fleetpki ceremony migrate-root\``
      : `offline root: token ${config.rootTokenLabel} in its own HSM (${config.rootHsm.dir})${root === 'created' ? ' (initialised; PINs with the custodians)' : ''}`,
  );
  if (config.sites.a.netns) {
    ensureNetns(config.simulation);
    log(`network namespaces: ${config.consensus.members.map((m) => `${m.netns} (${m.host})`).join(', ')}, linked point to point`);
  }
  const { primary, standby } = currentRoles(config);
  const startEtcd = async () => {
    const etcd = await ensureEtcd(config);
    log(`etcd: ${config.consensus.members.map((m) => `${m.name} on ${new URL(m.clientUrl).host} ${etcd[m.name]}`).join(', ')}`);
  };
  if (config.databaseHa === 'patroni') {
    // etcd first: it is Patroni's store.
    await startEtcd();
    await patroniSitesUp(config, log);
  } else {
    log(`site ${primary.id}: PostgreSQL primary on ${primary.host}:${primary.pgPort} ${await ensurePrimary(config, primary, standby)}`);
    log(`site ${standby.id}: PostgreSQL hot standby on ${standby.host}:${standby.pgPort} ${await ensureStandby(config, standby, primary)}`);
  }
  for (const site of [config.sites.a, config.sites.b]) {
    log(`site ${site.id}: Redis on ${site.host}:${site.redisPort} ${await ensureRedis(site, config)}`);
  }
  // A CA whose backups fail still issues: say so loudly (sites status, backup check) rather than stop here.
  const backups = await ensureStanza(config).catch((err: Error) => `FAILED: ${err.message}`);
  log(`backups: repository ${config.backup.repository}, stanza ${config.backup.stanza}: ${backups}`);
  if (config.databaseHa !== 'patroni') await startEtcd();
  for (const site of [primary, standby]) log(`site ${site.id}: agent ${ensureAgent(config, site, options.hostFiles?.[site.id])} (log ${agentLogFile(site)})`);
}

/** Stops every process of ours (standby first, so the primary does not wait on it while shutting down). */
export async function sitesDown(config: FleetConfig, log: Log = () => undefined): Promise<void> {
  const { primary, standby } = currentRoles(config);
  // The agents first: they would otherwise take a stopping database for a failure and fail over.
  for (const site of [standby, primary]) await stopAgent(site);
  if (config.databaseHa === 'patroni') await patroniSitesDown(config);
  for (const site of [standby, primary]) {
    await stopCluster(site);
    await stopRedis(site);
    log(`site ${site.id}: stopped`);
  }
  await stopEtcd(config);
  log('etcd: stopped');
  await stopLocalPrometheus(config);
  const leftovers = processesUnder(config.stateDir);
  for (const pid of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (leftovers.length) log(`killed ${leftovers.length} leftover process(es) using ${config.stateDir}`);
}

/** PIDs whose command line names our state folder (a crashed service, a stray postgres child). */
export function processesUnder(stateDir: string): number[] {
  const out = spawnSync('pgrep', ['-f', stateDir], { encoding: 'utf8' });
  return (out.stdout ?? '')
    .split('\n')
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
}

export interface SiteStatus {
  readonly site: SiteId;
  readonly postgres: {
    readonly up: boolean;
    readonly port: number;
    readonly role?: 'primary' | 'standby';
    readonly standbys?: readonly { name: string; state: string; sync: string; lagBytes: number }[];
    readonly replayLagBytes?: number | null;
    readonly error?: string;
  };
  readonly redis: { readonly up: boolean; readonly port: number; readonly version?: string; readonly error?: string };
  readonly hsm: { readonly tokens: readonly string[]; readonly expected: readonly string[]; readonly ready: boolean };
  /** The site's role in the CA (site_state), as this site's own database sees it. */
  readonly caRole?: string;
  readonly etcd: { readonly up: boolean; readonly healthy: boolean; readonly error?: string };
  readonly agent: { readonly running: boolean; readonly pid?: number };
}

/** What etcd says: who leads, and what the agents recorded. */
export interface ConsensusStatus {
  readonly reachable: boolean;
  readonly error?: string;
  readonly leader?: { readonly site: SiteId; readonly ttlSeconds: number };
  readonly unprotected?: { readonly since: string; readonly by: string; readonly restoring?: boolean };
  readonly writesBlocked: Readonly<Partial<Record<SiteId, string>>>;
  readonly witness: { readonly up: boolean; readonly healthy: boolean; readonly error?: string };
  readonly lastRejoin: Readonly<Partial<Record<SiteId, RejoinRecord>>>;
  /** With database.ha patroni: the members as `patronictl list` shows them (undefined when no Patroni answers). */
  readonly patroni?: { readonly members: readonly PatroniMember[]; readonly paused: boolean } | undefined;
  /** Why a site's Patroni REST API failed (TLS), beside `patroni`. */
  readonly patroniErrors?: readonly string[];
}

export async function consensusStatus(config: FleetConfig): Promise<ConsensusStatus> {
  const witnessMember = config.consensus.members.find((m) => m.name === 'witness')!;
  const witness = await etcdHealth(config, witnessMember);
  const client = openConsensus(config, 'service', 1_000);
  try {
    const state = await new CaSiteReader(client, config).read();
    const lastRejoin: Partial<Record<SiteId, RejoinRecord>> = {};
    for (const id of SITE_IDS) {
      const r = await readRejoin(client, config, id);
      if (r) lastRejoin[id] = r;
    }
    const patroniErrors: string[] = [];
    const patroni = config.databaseHa === 'patroni' ? await patroniCluster(config, patroniErrors) : undefined;
    return {
      ...(config.databaseHa === 'patroni' ? { patroni, patroniErrors } : {}),
      reachable: true,
      ...(state.leader ? { leader: { site: state.leader.site, ttlSeconds: state.leader.ttlSeconds } } : {}),
      ...(state.unprotected ? { unprotected: state.unprotected } : {}),
      writesBlocked: state.writesBlocked,
      witness,
      lastRejoin,
    };
  } catch (err) {
    return { reachable: false, error: (err as Error).message, writesBlocked: {}, witness, lastRejoin: {} };
  } finally {
    client.close();
  }
}

export async function siteStatus(config: FleetConfig, site: SiteConfig): Promise<SiteStatus> {
  const [postgres, caRole] = await postgresStatus(config, site);
  const redis = await probeRedis(redisLink(config, site), 500);
  const tokens = await listTokens(site).catch((): string[] => []);
  const expected = tokensOfSite(config, site);
  const member = config.consensus.members.find((m) => m.name === site.id)!;
  const pid = agentPid(site);
  return {
    etcd: await etcdHealth(config, member),
    agent: { running: pid !== undefined, ...(pid !== undefined ? { pid } : {}) },
    site: site.id,
    postgres,
    redis: { ...redis, port: site.redisPort },
    hsm: { tokens, expected, ready: expected.every((t) => tokens.includes(t)) },
    ...(caRole ? { caRole } : {}),
  };
}

async function postgresStatus(config: FleetConfig, site: SiteConfig): Promise<[SiteStatus['postgres'], string | undefined]> {
  if (!existsSync(pgDataDir(site)) || !(await isClusterRunning(site))) return [{ up: false, port: site.pgPort }, undefined];
  const pool = createPool(site.databaseUrl, { applicationName: 'fleetpki-status', max: 1, connectionTimeoutMillis: 1_000, security: pgLinkSecurity(config, 'owner') });
  try {
    const role = await readDatabaseRole(pool);
    let caRole: string | undefined;
    try {
      const r = await pool.query<{ role: string }>('SELECT role FROM site_state WHERE site = $1', [site.id]);
      caRole = r.rows[0]?.role;
    } catch {
      // not migrated yet
    }
    const status: SiteStatus['postgres'] = role.inRecovery
      ? { up: true, port: site.pgPort, role: 'standby', replayLagBytes: role.replayLagBytes }
      : { up: true, port: site.pgPort, role: 'primary', standbys: role.standbys.map((s) => ({ name: s.applicationName, state: s.state, sync: s.syncState, lagBytes: s.replayLagBytes })) };
    return [status, caRole];
  } catch (err) {
    return [{ up: false, port: site.pgPort, error: (err as Error).message }, undefined];
  } finally {
    await pool.end();
  }
}

export async function sitesStatus(config: FleetConfig): Promise<SiteStatus[]> {
  return Promise.all([siteStatus(config, config.sites.a), siteStatus(config, config.sites.b)]);
}

/** A plain-text table of sitesStatus (and what etcd says) for terminals. */
export function formatStatus(statuses: readonly SiteStatus[], consensus?: ConsensusStatus, backup?: BackupStatus): string {
  const rows = [['site', 'part', 'state', 'detail']];
  for (const s of statuses) {
    const blocked = consensus?.writesBlocked[s.site];
    const pgDetail = !s.postgres.up
      ? s.postgres.error ?? 'not running'
      : s.postgres.role === 'primary'
        ? `primary; standbys: ${s.postgres.standbys?.map((b) => `${b.name} ${b.state}/${b.sync} lag ${b.lagBytes} B`).join(', ') || 'none'}${blocked ? `; writes blocked: synchronous standby unreachable since ${blocked}` : ''}`
        : `hot standby; replay lag ${s.postgres.replayLagBytes ?? '?'} B`;
    rows.push([s.site, `postgres :${s.postgres.port}`, s.postgres.up ? 'up' : 'down', pgDetail]);
    rows.push([s.site, `redis :${s.redis.port}`, s.redis.up ? 'up' : 'down', s.redis.up ? `v${s.redis.version ?? '?'}` : s.redis.error ?? '']);
    rows.push([s.site, 'hsm', s.hsm.ready ? 'ready' : 'missing', `tokens: ${s.hsm.tokens.join(', ') || 'none'}`]);
    rows.push([s.site, 'etcd', s.etcd.healthy ? 'up' : s.etcd.up ? 'no quorum' : 'down', s.etcd.error ?? '']);
    const rejoin = consensus?.lastRejoin[s.site];
    rows.push([s.site, 'agent', s.agent.running ? 'up' : 'down', `${consensus?.leader?.site === s.site ? `leads (lease ${consensus.leader.ttlSeconds} s left)` : 'does not lead'}${rejoin ? `; last rejoined ${rejoin.at} (${rejoin.how}, ${rejoin.seconds} s)` : ''}`]);
    rows.push([s.site, 'ca role', s.caRole ?? '-', s.caRole ? '' : 'not migrated yet']);
  }
  if (consensus) {
    rows.push(['witness', 'etcd', consensus.witness.healthy ? 'up' : consensus.witness.up ? 'no quorum' : 'down', consensus.witness.error ?? '']);
    rows.push(['-', 'ca site', consensus.leader ? consensus.leader.site : 'none', consensus.reachable ? (consensus.unprotected ? consensus.unprotected.restoring ? `UNPROTECTED since ${consensus.unprotected.since} (by ${consensus.unprotected.by}), restoring: commits wait for the standby again, which neither vouches nor may be promoted until it has caught up` : `UNPROTECTED since ${consensus.unprotected.since} (by ${consensus.unprotected.by}): the primary commits without its standby` : 'strictly synchronous') : `etcd unreachable: ${consensus.error ?? ''}`]);
  }
  if (consensus && 'patroni' in consensus) {
    if (!consensus.patroni) rows.push(['-', 'patroni', 'down', `no Patroni REST API answers${consensus.patroniErrors?.length ? `: ${consensus.patroniErrors.join('; ')}` : ''}`]);
    for (const m of consensus.patroni?.members ?? []) rows.push([m.site, `patroni ${m.name}`, m.role, `${m.state}, timeline ${m.timeline ?? '?'}${m.lagBytes !== undefined ? `, lag ${m.lagBytes} B` : ''}${consensus.patroni!.paused ? ', PAUSED (no automatic failover)' : ''}`]);
  }
  if (backup) rows.push(...backupStatusRows(backup));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
