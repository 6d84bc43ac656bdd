import pino from 'pino';
import { openJobLeadership, openRoleSiteRuntime, openStatusSite, postgresBatchHealthStore, type ChunkJobQueue, type JobLeadership, type RoleSiteRuntime, type SiteLease, type StatusSite } from '@fleetpki/ca';
import { DEFAULT_PASS_DEADLINE_MS, Daemon, FleetError, type DaemonStats, type FleetConfig } from '@fleetpki/core';
import { assertRedisLink, ChunkQueue, redisLink } from '@fleetpki/queue';
import { JOBS, rolesOf, statusProducers, type JobContext, type JobRole, type StatusJobSite, type StatusProducers } from './jobs.js';

export { JOBS, RECONCILERS, STATUS_JOBS, reconcileEveryMs, rolesOf, type JobContext, type JobRole, type JobSpec, type StatusJobSite, type StatusProducers } from './jobs.js';

export interface SiteDaemons extends StatusProducers {
  /** The status site, when a selected job works as the status role (or the caller gave one). */
  readonly site: StatusSite | undefined;
  /** The database roles opened for the selected jobs, in registry order. */
  readonly roles: readonly JobRole[];
  readonly daemons: readonly Daemon[];
  /** Job names the site cannot run now (no CA key in its HSM, or turned off in the configuration), logged at start. */
  readonly unavailable: readonly string[];
  start(): void;
  /**
   * True when this site may act now (active, lease held) while a selected job could not get the CA key
   * at start (the key was not yet in this site's HSM, or the HSM failed then): the process must be
   * restarted to open it again, or the active site publishes no CRL and pre-produces nothing while
   * looking healthy (an outside review, issue 37). main.ts exits on it; /healthz answers 503.
   */
  blindWhileActive(): Promise<boolean>;
  /** One pass of each daemon, in registry order, after its leader check: the deterministic tick of tests and scripts. */
  runOnce(): Promise<void>;
  stats(): DaemonStats[];
  /** The lease each opened role holds its view of the site through (for /healthz). */
  leases(): Partial<Record<JobRole, ReturnType<SiteLease['state']>>>;
  /** With the batch outbox: the site's queue and the oldest unfinished chunk, for metrics (undefined otherwise). */
  readonly batchFigures: (() => Promise<{ jobs: { waiting: number; active: number; delayed: number; failed: number }; workers: number; oldestUnfinishedChunkSeconds: number }>) | undefined;
  close(): Promise<void>;
}

/** How the daemons open what their jobs need; tests give their own (the defaults open PostgreSQL, etcd, the HSM and Redis). */
export interface SiteDaemonsSeams {
  openStatusSite?(): Promise<StatusSite>;
  openRoleSite?(role: 'issuer' | 'worker'): Promise<RoleSiteRuntime>;
  openQueue?(): ChunkJobQueue & { close(): Promise<void> };
  openLeadership?(): Promise<JobLeadership>;
}

export interface SiteDaemonsOptions {
  /** Job names to run (default: every job of jobs.ts). */
  readonly only?: readonly string[];
  /** The pause between passes of every job (default: each job's own). */
  readonly everyMs?: number;
  /** false: no logs (tests). */
  readonly logger?: boolean;
  /** The status site, opened by the caller (tests share it with a responder); the caller closes it. */
  readonly site?: StatusSite;
  readonly seams?: SiteDaemonsSeams;
  /** Called when a pass outlives `passDeadlineMs` (Daemon's onStuck): main.ts ends the process. */
  readonly onStuck?: (job: string, deadlineMs: number) => void;
  readonly passDeadlineMs?: number;
}

/**
 * FLEETPKI_DAEMONS_PASS_DEADLINE_MS: how long a pass may run before the process gives up on it (default
 * DEFAULT_PASS_DEADLINE_MS, 10 minutes). Refused unless a whole number of milliseconds, at least
 * MIN_PASS_DEADLINE_MS: a shorter one would have a stalled job restart the unit more often than
 * systemd's StartLimitBurst=5 in StartLimitIntervalSec=120 allows, and the unit would stay down.
 */
export function passDeadlineFrom(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_PASS_DEADLINE_MS;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < MIN_PASS_DEADLINE_MS) throw new FleetError('CONFIG_INVALID', `invalid configuration: FLEETPKI_DAEMONS_PASS_DEADLINE_MS must be a whole number of milliseconds, at least ${MIN_PASS_DEADLINE_MS}, got "${value}"`);
  return ms;
}

export const MIN_PASS_DEADLINE_MS = 30_000;

/**
 * The daemons' sessions: a pass waits at most a minute for a lock and five for a statement, then fails
 * and is retried, instead of hanging behind a transaction someone keeps open (and holding its job); a
 * backend whose daemons process is gone notices within five seconds instead of waiting on, then
 * committing its statement while another instance runs the same job.
 */
export const DAEMON_SESSION_WAITS = { lockTimeoutMs: 60_000, statementTimeoutMs: 300_000, clientCheckIntervalMs: 5_000 } as const;

/** Parses `--only a,b` / FLEETPKI_DAEMONS=a,b, refusing a name that is no job (a typo must not run nothing). */
export function selectJobs(list: string | undefined): string[] | undefined {
  if (!list) return undefined;
  const names = list.split(',').map((n) => n.trim()).filter(Boolean);
  assertJobs(names);
  return names;
}

function assertJobs(names: readonly string[]): void {
  const unknown = names.filter((n) => !(n in JOBS));
  if (unknown.length > 0) throw new FleetError('DAEMON_UNKNOWN', `no daemon ${unknown.join(', ')}; the daemons are ${Object.keys(JOBS).join(', ')}`);
}

/**
 * The site's daemons: for the selected jobs, each database role they work as is opened once (the status
 * site with the CA key; the issuer's and the worker's a small pool, the lease, no HSM), then one Daemon
 * per job, asking its role's guard before every pass whether this site may act (the active site holding
 * its lease) and then whether this process leads the job among the site's instances (a PostgreSQL
 * advisory lock per job, JobLeadership): only one instance of the active site runs each job.
 */
export async function openSiteDaemons(config: FleetConfig, options: SiteDaemonsOptions = {}): Promise<SiteDaemons> {
  const names = Object.keys(JOBS).filter((n) => (options.only ?? Object.keys(JOBS)).includes(n));
  assertJobs(options.only ?? []);
  const log = pino({ name: `daemons-${config.site}`, level: options.logger === false ? 'silent' : config.logLevel });
  const seams = options.seams ?? {};
  const roles = rolesOf(names);
  // The outbox re-queues into Redis: a wrong Redis password or CA stops the daemons here, not at the first pass.
  if (names.includes('batch-outbox') && !seams.openQueue) await assertRedisLink(redisLink(config, config.sites[config.site], 'daemons'));
  const closers: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((err: unknown) => log.warn({ err }, 'closing the daemons'));
  };
  let queue: (ChunkJobQueue & { close(): Promise<void> }) | undefined;
  const context: JobContext = {
    config,
    everyMs: options.everyMs,
    actor: `daemons:${config.site}`,
    log,
    queue() {
      if (!queue) {
        const opened = seams.openQueue ? seams.openQueue() : new ChunkQueue(redisLink(config, config.sites[config.site], 'daemons'), config.pgDatabase);
        closers.push(() => opened.close());
        queue = opened;
      }
      return queue;
    },
  };
  try {
    let statusSite: StatusJobSite | undefined;
    const roleSites: Partial<Record<'issuer' | 'worker', RoleSiteRuntime>> = {};
    for (const role of roles) {
      if (role === 'status') {
        const site = options.site ?? (await (seams.openStatusSite ? seams.openStatusSite() : openStatusSite(config, { connections: 4, purpose: 'daemons', waits: DAEMON_SESSION_WAITS })));
        if (!options.site) closers.push(() => site.close());
        statusSite = { site, status: statusProducers(config, site) };
      } else {
        const site = await (seams.openRoleSite ? seams.openRoleSite(role) : openRoleSiteRuntime(config, { service: role, pool: { max: 2, waits: DAEMON_SESSION_WAITS }, purpose: 'daemons' }));
        closers.push(() => site.close());
        roleSites[role] = site;
      }
    }
    // As the first role opened: its database role can take advisory locks like any other.
    const leadership = await (seams.openLeadership ? seams.openLeadership() : openJobLeadership(config, roles[0] ?? 'status'));
    closers.push(() => leadership.close());
    const daemons: Daemon[] = [];
    const unavailable: string[] = [];
    for (const name of names) {
      const spec = JOBS[name]!;
      const placed = spec.role === 'status' ? { job: spec.make(context, statusSite!), canAct: statusSite!.site.canAct } : { job: spec.make(context, roleSites[spec.role]!), canAct: () => roleSites[spec.role as 'issuer' | 'worker']!.guard.canAct() };
      // The site first: an instance that may not act takes no lock, and gives up one it held (its
      // lease lost while the others' is not), or the job would stop for the whole site.
      const mayRun = async () => {
        if (!(await placed.canAct())) {
          await leadership.release(name);
          return false;
        }
        return leadership.holds(name);
      };
      if (placed.job) daemons.push(new Daemon(placed.job, { mayRun, log, ...(options.onStuck ? { onStuck: options.onStuck } : {}), ...(options.passDeadlineMs ? { passDeadlineMs: options.passDeadlineMs } : {}) }));
      else unavailable.push(name);
    }
    if (unavailable.length > 0) log.warn({ unavailable }, 'these daemons do not run here: no CA key in this site\'s HSM, or turned off in the configuration');
    const outboxSite = names.includes('batch-outbox') ? roleSites.worker : undefined;
    const batchFigures = outboxSite
      ? async () => {
          const queue = context.queue() as Partial<ChunkQueue>;
          if (!queue.counts || !queue.workers) throw new Error('this queue cannot be counted');
          const health = postgresBatchHealthStore(outboxSite.pool);
          return { jobs: await queue.counts(), workers: await queue.workers(), oldestUnfinishedChunkSeconds: await health.oldestUnfinishedChunkSeconds() };
        }
      : undefined;
    return {
      batchFigures,
      publisher: statusSite?.status.publisher,
      preProducer: statusSite?.status.preProducer,
      refresher: statusSite?.status.refresher,
      site: statusSite?.site,
      roles,
      daemons,
      unavailable,
      start() {
        for (const d of daemons) d.start();
      },
      async blindWhileActive() {
        if (!statusSite || statusSite.site.keyStore !== undefined || !unavailable.some((n) => JOBS[n]!.role === 'status')) return false;
        return statusSite.site.canAct();
      },
      async runOnce() {
        for (const d of daemons) await d.runOnce();
      },
      stats: () => daemons.map((d) => d.stats),
      leases: () => ({
        ...(statusSite ? { status: statusSite.site.lease.state() } : {}),
        ...Object.fromEntries(Object.entries(roleSites).map(([role, site]) => [role, site.lease.state()])),
      }),
      async close() {
        // Passes still signing finish before the HSM session goes away under them.
        await Promise.all(daemons.map((d) => d.stop()));
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
