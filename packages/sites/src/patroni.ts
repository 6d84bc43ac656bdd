// Patroni runs each site's PostgreSQL (database.ha patroni, issue 35): one Patroni per site, the pair's
// etcd as its store, synchronous_mode_strict, pg_rewind on rejoin. This module starts, stops and asks it
// (its configuration: patroni-config.ts); what it decides (leader, promotion, rewind) is Patroni's.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { FleetError, InternalHttps, type FleetConfig, type SiteConfig, type SiteId } from '@fleetpki/core';
import { inNetns, isRoot, PG_OS_USER } from './exec.js';
import { osUserIds } from './os-user.js';
import { livePid, removePidFile, writePidFile } from './pid-file.js';
import { assertPortFree } from './ports.js';
import { pgDataDir, prepareClusterDir } from './postgres-cluster.js';
import { installPatroniTlsFiles, patroniDir, patroniSecret, patroniUrl, writePatroniConfig } from './patroni-config.js';

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

/** Starts the site's Patroni (a no-op when it runs); it starts PostgreSQL itself, as primary or replica. */
export async function ensurePatroni(config: FleetConfig, site: SiteConfig): Promise<'started' | 'running'> {
  if (patroniPid(site) !== undefined) return 'running';
  await assertPortFree(site.patroniPort, `Patroni of site ${site.id}`, `FLEETPKI_PATRONI_PORT_${site.id.toUpperCase()}`, site.patroniHost);
  await assertPortFree(site.pgPort, `PostgreSQL of site ${site.id}`, `FLEETPKI_PG_PORT_${site.id.toUpperCase()}`, site.host);
  installPatroniTlsFiles(config, site);
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

/** One client per configuration: it reads the CA bundle once. */
const clients = new WeakMap<FleetConfig, InternalHttps>();
function restClient(config: FleetConfig): InternalHttps {
  let client = clients.get(config);
  if (!client) clients.set(config, (client = new InternalHttps(config)));
  return client;
}

/**
 * GET a path of the site's Patroni REST API: its status and JSON body (undefined status when it does not
 * answer). A certificate the bundle does not vouch for is an error (PATRONI_TLS_UNTRUSTED), not "down".
 */
export async function patroniGet(config: FleetConfig, site: SiteConfig, path: string, timeoutMs = 2_000): Promise<{ status: number | undefined; body: Record<string, unknown> | undefined }> {
  let answer;
  try {
    answer = await restClient(config).request('patroni', `${patroniUrl(config, site)}${path}`, { timeoutMs });
  } catch (err) {
    if (err instanceof FleetError) throw err;
    return { status: undefined, body: undefined };
  }
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  return { status: answer.status, body };
}

/** A call that changes something (switchover, PATCH /config): with the REST API's password. */
export async function patroniCall(config: FleetConfig, site: SiteConfig, method: 'POST' | 'PATCH', path: string, body: unknown, timeoutMs = 60_000): Promise<{ status: number; text: string }> {
  const auth = Buffer.from(`fleetpki:${patroniSecret(config, 'rest')}`).toString('base64');
  try {
    const res = await restClient(config).request('patroni', `${patroniUrl(config, site)}${path}`, { method, headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' }, body: JSON.stringify(body), timeoutMs });
    return { status: res.status, text: res.body.toString('utf8') };
  } catch (err) {
    if (err instanceof FleetError) throw err;
    throw new FleetError('SITES_PATRONI_UNREACHABLE', `site ${site.id}'s Patroni REST API (${patroniUrl(config, site)}) did not answer ${method} ${path}: ${(err as Error).message}`);
  }
}

/**
 * Waits until the site's Patroni says its PostgreSQL is `role` (GET /primary or /replica answers 200:
 * running, and for a replica streaming or at least replaying).
 */
export async function waitForPatroniRole(config: FleetConfig, site: SiteConfig, role: 'primary' | 'replica' | 'sync', timeoutMs = 180_000): Promise<void> {
  const path = role === 'sync' ? '/sync' : `/${role}`;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    const r = await patroniGet(config, site, path);
    if (r.status === 200) return;
    if (patroniPid(site) === undefined) throw new FleetError('SITES_PATRONI_DIED', `site ${site.id}'s Patroni is not running: ${patroniLogTail(site)}; see ${patroniLogFile(site)}`);
    last = r.status === undefined ? 'Patroni does not answer' : `${path} answered ${r.status}${r.body?.state ? ` (PostgreSQL ${String(r.body.state)}, ${String(r.body.role ?? '')})` : ''}`;
    if (Date.now() > deadline) throw new FleetError('SITES_PATRONI_TIMEOUT', `site ${site.id}'s Patroni did not report ${role === 'sync' ? 'a synchronous standby' : `a ${role}`} within ${timeoutMs / 1000} s (${last}); its log ends: ${patroniLogTail(site, 3)}; see ${patroniLogFile(site)}`);
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

/**
 * The cluster as Patroni sees it (GET /cluster from whichever site answers), or undefined when neither does.
 * A site whose API fails (a certificate the bundle does not vouch for) is passed over for the other; what
 * failed goes into `errors` when given, for whoever reports it.
 */
export async function patroniCluster(config: FleetConfig, errors?: string[]): Promise<{ members: PatroniMember[]; paused: boolean } | undefined> {
  for (const site of [config.sites.a, config.sites.b]) {
    let r: Awaited<ReturnType<typeof patroniGet>>;
    try {
      r = await patroniGet(config, site, '/cluster');
    } catch (err) {
      errors?.push(`site ${site.id}: ${(err as Error).message}`);
      continue;
    }
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
