// Patroni runs each site's PostgreSQL (database.ha patroni, issue 35): one Patroni per site, the pair's
// etcd as its store, synchronous_mode_strict, pg_rewind on rejoin. This module writes its configuration
// and starts, stops and asks it; what it decides (leader, promotion, rewind) is Patroni's.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { PATRONI_NAMESPACE, PATRONI_SCOPE, patroniIdentity, readEtcdPassword } from '@fleetpki/consensus';
import { FleetError, type FleetConfig, type SiteConfig, type SiteId } from '@fleetpki/core';
import { inNetns, isRoot, pgBinDir, PG_OS_USER } from './exec.js';
import { osUserIds } from './os-user.js';
import { livePid, removePidFile, writePidFile } from './pid-file.js';
import { assertPortFree } from './ports.js';
import { sharedSettings } from './cluster-settings.js';
import { pgDataDir, prepareClusterDir, standbyName } from './postgres-cluster.js';
import { pgServerTls } from './postgres-tls.js';

/**
 * Patroni's timing (its dynamic configuration, in etcd). ttl is the leader key's lease: a primary whose
 * Patroni stops renewing it is failed over once it runs out, and the services' CA-site view (CaSiteReader)
 * ends with it. Patroni needs loop_wait + 2 * retry_timeout <= ttl, so that a primary that cannot reach
 * etcd demotes itself before its key can run out. 10 s instead of Patroni's 30: the CA's RTO.
 */
export const PATRONI_TIMING = { ttl: 10, loopWait: 1, retryTimeout: 4 } as const;

/** The PostgreSQL roles Patroni creates at bootstrap for streaming and for pg_rewind (not the owner: issue 35). */
export const REPLICATION_ROLE = 'fleetpki_replication';
export const REWIND_ROLE = 'fleetpki_rewind';

export function patroniDir(site: SiteConfig): string {
  return join(site.dir, 'patroni');
}

export function patroniConfigFile(site: SiteConfig): string {
  return join(patroniDir(site), 'patroni.yml');
}

export function patroniLogFile(site: SiteConfig): string {
  return join(site.dir, 'patroni.log');
}

/** Written by `sites up` when it starts Patroni (the local simulation); systemd's Patroni has none. */
export function patroniPidFile(site: SiteConfig): string {
  return join(site.dir, 'patroni.pid');
}

export function patroniPid(site: SiteConfig): number | undefined {
  return livePid(patroniPidFile(site));
}

/**
 * A password of Patroni's (the replication and rewind roles', the REST API's), made once and kept in
 * <stateDir>/patroni-secrets (0600): both sites' Patroni must know the same ones.
 */
function patroniSecret(config: FleetConfig, name: 'replication' | 'rewind' | 'rest' | 'superuser'): string {
  const dir = join(config.stateDir, 'patroni-secrets');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  return readFileSync(file, 'utf8').trim();
}

/** `name = value` as postgresql.conf writes it, as Patroni's parameters take it (quotes off). */
function parameters(lines: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new FleetError('SITES_SETTING_INVALID', `not a PostgreSQL setting: ${line}`);
    out[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** Where the site's Patroni REST API answers. */
export function patroniUrl(site: SiteConfig): string {
  return `http://${site.patroniHost}:${site.patroniPort}`;
}

/**
 * The site's Patroni configuration (JSON, which is YAML). Cluster-wide settings go to bootstrap.dcs, which
 * Patroni writes into etcd once, when the first site initialises the cluster; afterwards `patronictl
 * edit-config` or the REST API's PATCH /config change them, not this file.
 */
export function patroniDocument(config: FleetConfig, site: SiteConfig): Record<string, unknown> {
  const tls = pgServerTls(config);
  if (tls) throw new FleetError('SITES_PATRONI_UNSUPPORTED', 'database.ha patroni with tls.postgres is not built yet (issue 35): Patroni would need the TLS client settings for replication and pg_rewind; use database.ha agent with TLS for now');
  if (config.consensus.endpoints.some((u) => u.startsWith('https:'))) throw new FleetError('SITES_PATRONI_UNSUPPORTED', 'database.ha patroni with etcd over TLS (tls.etcd) is not built yet (issue 35): Patroni would need the client certificate; use database.ha agent with TLS for now');
  const shared = parameters(sharedSettings(config, site));
  const endpoints = config.consensus.endpoints.map((u) => new URL(u).host);
  const restPassword = patroniSecret(config, 'rest');
  return {
    scope: PATRONI_SCOPE,
    namespace: `${config.consensus.prefix}${PATRONI_NAMESPACE}`.replace(/\/$/, ''),
    // The member's name is the name it streams under as a standby (synchronous_standby_names names it).
    name: standbyName(site),
    log: { level: 'INFO', format: '%(asctime)s %(levelname)s: %(message)s' },
    restapi: {
      listen: `${site.patroniHost}:${site.patroniPort}`,
      connect_address: `${site.patroniHost}:${site.patroniPort}`,
      // Switchover, restart and reinitialize need it; health checks (GET) do not.
      authentication: { username: 'fleetpki', password: restPassword },
    },
    etcd3: { hosts: endpoints, protocol: 'http', username: patroniIdentity(site.id), password: readEtcdPassword(config, patroniIdentity(site.id)) },
    bootstrap: {
      dcs: {
        ttl: PATRONI_TIMING.ttl,
        loop_wait: PATRONI_TIMING.loopWait,
        retry_timeout: PATRONI_TIMING.retryTimeout,
        // RPO 0: a commit returns only once the other site has it; strict: with the standby gone, commits
        // wait (the services answer 503 STANDBY_UNAVAILABLE after writeWaitMs) rather than go on alone.
        synchronous_mode: true,
        synchronous_mode_strict: true,
        // etcd lost while both sites still see each other: the primary keeps going (Patroni 3's failsafe).
        failsafe_mode: true,
        // Not maximum_lag_on_failover 0: measured against the old primary's last WAL position, a sync standby
        // under write load is always "behind" by what was in flight, and would never be promoted. While
        // asynchronous (`sites unprotect`) Patroni is paused instead, and the agent refuses a switchover.
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          // Cluster-wide (Patroni checks them equal on every member); the rest of sharedSettings are local.
          parameters: {
            max_connections: shared.max_connections,
            max_wal_senders: shared.max_wal_senders,
            max_replication_slots: shared.max_replication_slots,
            wal_level: shared.wal_level,
            wal_log_hints: shared.wal_log_hints,
            wal_keep_size: shared.wal_keep_size,
            hot_standby: shared.hot_standby,
            track_commit_timestamp: shared.track_commit_timestamp,
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }, { auth: 'trust' }],
    },
    postgresql: {
      listen: `${site.host}:${site.pgPort}`,
      connect_address: `${site.host}:${site.pgPort}`,
      data_dir: pgDataDir(site),
      bin_dir: pgBinDir(),
      pgpass: join(patroniDir(site), 'pgpass'),
      authentication: {
        superuser: { username: config.pgUser, password: patroniSecret(config, 'superuser') },
        replication: { username: REPLICATION_ROLE, password: patroniSecret(config, 'replication') },
        rewind: { username: REWIND_ROLE, password: patroniSecret(config, 'rewind') },
      },
      parameters: shared,
      // The simulation's loopback trust, as in the agent's clusters (production: tls.postgres, scram).
      // In network namespaces the other site and the services reach it over the namespaces' private link.
      pg_hba: [site.host, ...(site.netns ? [config.simulation.subnet] : [])].flatMap((from) => [`host all all ${from.includes('/') ? from : `${from}/32`} trust`, `host replication all ${from.includes('/') ? from : `${from}/32`} trust`]),
    },
  };
}

/** Writes the site's patroni.yml (0600, the postgres OS user's: it holds passwords). */
export function writePatroniConfig(config: FleetConfig, site: SiteConfig): string {
  const dir = patroniDir(site);
  prepareClusterDir(dir);
  const file = patroniConfigFile(site);
  writeFileSync(file, `${JSON.stringify(patroniDocument(config, site), null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  if (isRoot) {
    const { uid, gid } = osUserIds(PG_OS_USER);
    chownSync(file, uid, gid);
  }
  return file;
}

/** Starts the site's Patroni (a no-op when it runs); it starts PostgreSQL itself, as primary or replica. */
export async function ensurePatroni(config: FleetConfig, site: SiteConfig): Promise<'started' | 'running'> {
  if (patroniPid(site) !== undefined) return 'running';
  await assertPortFree(site.patroniPort, `Patroni of site ${site.id}`, `FLEETPKI_PATRONI_PORT_${site.id.toUpperCase()}`, site.patroniHost);
  await assertPortFree(site.pgPort, `PostgreSQL of site ${site.id}`, `FLEETPKI_PG_PORT_${site.id.toUpperCase()}`, site.host);
  const file = writePatroniConfig(config, site);
  // Patroni's initdb or basebackup fills it; the site folder itself is not the postgres user's to write.
  prepareClusterDir(pgDataDir(site));
  const log = openSync(patroniLogFile(site), 'a', 0o640);
  // In a site's network namespace `ip netns exec` (root) execs setpriv, which drops to postgres and execs
  // Patroni: one pid all along, so the pid file names Patroni itself (runuser would stay as its parent).
  const ids = isRoot && !site.netns ? osUserIds(PG_OS_USER) : undefined;
  const [cmd, args] = site.netns ? inNetns(site.netns, 'setpriv', ['--reuid', PG_OS_USER, '--regid', PG_OS_USER, '--init-groups', 'patroni', file]) : ['patroni', [file]];
  const child = spawn(cmd, args, { cwd: patroniDir(site), detached: true, stdio: ['ignore', log, log], ...(ids ? { uid: ids.uid, gid: ids.gid } : {}), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' } });
  closeSync(log);
  if (child.pid === undefined) {
    const why = await new Promise<string>((resolve) => child.once('error', (err) => resolve(err.message)));
    throw new FleetError('SITES_PATRONI_START_FAILED', `site ${site.id}: cannot start Patroni (${cmd}): ${why}; install the Debian package patroni (scripts/setup.sh)`);
  }
  child.on('error', () => undefined);
  child.unref();
  writePidFile(patroniPidFile(site), child.pid);
  return 'started';
}

/** Stops the site's Patroni (SIGTERM: it stops PostgreSQL cleanly first) and waits for it to end. */
export async function stopPatroni(site: SiteConfig, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 90_000): Promise<void> {
  const pid = patroniPid(site);
  if (pid === undefined) return;
  process.kill(pid, signal);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      removePidFile(patroniPidFile(site));
      return;
    }
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      removePidFile(patroniPidFile(site));
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGKILL the site's Patroni (a host dying, in drills); its PostgreSQL lives on until killed too. Returns how many processes. */
export function killPatroni(site: SiteConfig): number {
  const pid = patroniPid(site);
  if (pid === undefined) return 0;
  try {
    process.kill(pid, 'SIGKILL');
    return 1;
  } catch {
    return 0;
  }
}

/** GET a path of the site's Patroni REST API: its status and JSON body (undefined status when it does not answer). */
export async function patroniGet(site: SiteConfig, path: string, timeoutMs = 2_000): Promise<{ status: number | undefined; body: Record<string, unknown> | undefined }> {
  try {
    const res = await fetch(`${patroniUrl(site)}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: Record<string, unknown> | undefined;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  } catch {
    return { status: undefined, body: undefined };
  }
}

/** A call that changes something (switchover, PATCH /config): with the REST API's password. */
export async function patroniCall(config: FleetConfig, site: SiteConfig, method: 'POST' | 'PATCH', path: string, body: unknown, timeoutMs = 60_000): Promise<{ status: number; text: string }> {
  const auth = Buffer.from(`fleetpki:${patroniSecret(config, 'rest')}`).toString('base64');
  try {
    const res = await fetch(`${patroniUrl(site)}${path}`, { method, headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    throw new FleetError('SITES_PATRONI_UNREACHABLE', `site ${site.id}'s Patroni REST API (${patroniUrl(site)}) did not answer ${method} ${path}: ${(err as Error).message}`);
  }
}

/**
 * Waits until the site's Patroni says its PostgreSQL is `role` (GET /primary or /replica answers 200:
 * running, and for a replica streaming or at least replaying).
 */
export async function waitForPatroniRole(site: SiteConfig, role: 'primary' | 'replica' | 'sync', timeoutMs = 180_000): Promise<void> {
  const path = role === 'sync' ? '/sync' : `/${role}`;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    const r = await patroniGet(site, path);
    if (r.status === 200) return;
    if (patroniPid(site) === undefined) throw new FleetError('SITES_PATRONI_DIED', `site ${site.id}'s Patroni is not running: ${patroniLogTail(site)}; see ${patroniLogFile(site)}`);
    last = r.status === undefined ? 'Patroni does not answer' : `${path} answered ${r.status}${r.body?.state ? ` (PostgreSQL ${String(r.body.state)}, ${String(r.body.role ?? '')})` : ''}`;
    if (Date.now() > deadline) throw new FleetError('SITES_PATRONI_TIMEOUT', `site ${site.id}'s Patroni did not report ${role === 'sync' ? 'a synchronous standby' : `a ${role}`} within ${timeoutMs / 1000} s (${last}); see ${patroniLogFile(site)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The last lines of the site's Patroni log that say something (no traceback frames), for an error message. */
export function patroniLogTail(site: SiteConfig, lines = 6): string {
  let text = '';
  try {
    text = readFileSync(patroniLogFile(site), 'utf8').slice(-64 * 1024);
  } catch {
    return 'no log';
  }
  return text.split('\n').filter((l) => l.trim() && !/^(\s|Traceback)/.test(l)).slice(-lines).join(' | ');
}

/** One member as `patronictl list` shows it. */
export interface PatroniMember {
  readonly name: string;
  readonly site: SiteId;
  readonly role: string;
  readonly state: string;
  readonly timeline: number | undefined;
  readonly lagBytes: number | undefined;
}

/** The cluster as Patroni sees it (GET /cluster from whichever site answers), or undefined when neither does. */
export async function patroniCluster(config: FleetConfig): Promise<{ members: PatroniMember[]; paused: boolean } | undefined> {
  for (const site of [config.sites.a, config.sites.b]) {
    const r = await patroniGet(site, '/cluster');
    if (r.status !== 200 || !r.body) continue;
    const members = ((r.body.members ?? []) as Record<string, unknown>[]).map((m) => ({
      name: String(m.name),
      site: String(m.name).replace(/^site_/, '') as SiteId,
      role: String(m.role),
      state: String(m.state),
      timeline: typeof m.timeline === 'number' ? m.timeline : undefined,
      lagBytes: typeof m.lag === 'number' ? m.lag : undefined,
    }));
    return { members, paused: r.body.pause === true };
  }
  return undefined;
}
