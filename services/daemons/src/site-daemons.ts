import pino from 'pino';
import { openStatusSite, type StatusSite } from '@fleetpki/ca';
import { Daemon, FleetError, type DaemonStats, type FleetConfig } from '@fleetpki/core';
import { JOBS, statusProducers, type StatusProducers } from './jobs.js';

export { JOBS, type JobContext, type JobFactory, type StatusProducers } from './jobs.js';

export interface SiteDaemons extends StatusProducers {
  readonly site: StatusSite;
  readonly daemons: readonly Daemon[];
  /** Job names the site cannot run now (no CA key in its HSM), logged at start. */
  readonly unavailable: readonly string[];
  start(): void;
  /** One pass of each daemon, in registry order, after its leader check: the deterministic tick of tests and scripts. */
  runOnce(): Promise<void>;
  stats(): DaemonStats[];
  close(): Promise<void>;
}

export interface SiteDaemonsOptions {
  /** Job names to run (default: every job of jobs.ts). */
  readonly only?: readonly string[];
  /** The pause between passes of the CRL and OCSP jobs (default: theirs, 500 ms). */
  readonly everyMs?: number;
  /** false: no logs (tests). */
  readonly logger?: boolean;
  /** What the jobs need, opened by the caller (tests share it with a responder); the caller closes it. */
  readonly site?: StatusSite;
}

/** Parses `--only a,b` / FLEETPKI_DAEMONS=a,b, refusing a name that is no job (a typo must not run nothing). */
export function selectJobs(list: string | undefined): string[] | undefined {
  if (!list) return undefined;
  const names = list.split(',').map((n) => n.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(n in JOBS));
  if (unknown.length > 0) throw new FleetError('DAEMON_UNKNOWN', `no daemon ${unknown.join(', ')}; the daemons are ${Object.keys(JOBS).join(', ')}`);
  return names;
}

/**
 * The site's daemons: what the jobs need is opened once (database, lease, CA key), then one Daemon per
 * job, each asking before every pass whether this site may act (the active site holding its lease), so
 * only the active site's instance works and several instances are safe.
 */
export async function openSiteDaemons(config: FleetConfig, options: SiteDaemonsOptions = {}): Promise<SiteDaemons> {
  const names = options.only ?? Object.keys(JOBS);
  for (const n of names) if (!(n in JOBS)) throw new FleetError('DAEMON_UNKNOWN', `no daemon ${n}; the daemons are ${Object.keys(JOBS).join(', ')}`);
  const log = pino({ name: `daemons-${config.site}`, level: options.logger === false ? 'silent' : config.logLevel });
  const site = options.site ?? (await openStatusSite(config, { connections: 4, purpose: 'daemons' }));
  const status = statusProducers(config, site);
  const context = { config, site, status, everyMs: options.everyMs, log };
  const daemons: Daemon[] = [];
  const unavailable: string[] = [];
  for (const name of names) {
    const job = JOBS[name]!(context);
    if (job) daemons.push(new Daemon(job, { mayRun: site.canAct, log }));
    else unavailable.push(name);
  }
  if (unavailable.length > 0) log.warn({ unavailable }, 'no CA key in this site\'s HSM: these daemons do not run here');
  return {
    ...status,
    site,
    daemons,
    unavailable,
    start() {
      for (const d of daemons) d.start();
    },
    async runOnce() {
      for (const d of daemons) await d.runOnce();
    },
    stats: () => daemons.map((d) => d.stats),
    async close() {
      // Passes still signing finish before the HSM session goes away under them.
      await Promise.all(daemons.map((d) => d.stop()));
      if (!options.site) await site.close();
    },
  };
}
