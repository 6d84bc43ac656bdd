import type { ChildProcess } from 'node:child_process';
import { issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { FleetError, InternalHttps, type FleetConfig, type SiteId } from '@fleetpki/core';
import { currentRoles, failoverTo, killPatroni, killPostgres, startService, stopProcess, switchover, waitForHttp, waitForRejoin, waitForSyncStandby } from '@fleetpki/sites';
import { syntheticRunPrefix } from '@fleetpki/manifest';
import { countMissingCertificates, createPool, pgLinkSecurity } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { EnrolmentTraffic } from './probes.js';

type RejoinRecord = Awaited<ReturnType<typeof waitForRejoin>>;

/** How the active site is made to give up the CA-site role. */
export type TakeoverKind =
  /** kill -9 of its PostgreSQL alone (services alive): the agents and etcd fail over on their own. */
  | 'kill-postgres'
  /** an operator's forced failover (`sites failover --force`): its lease revoked while it is alive. */
  | 'forced'
  /** a planned switchover (`sites switchover`): clean handover to the synchronous standby. */
  | 'switchover';

export interface TakeoverRun {
  readonly kind: TakeoverKind;
  readonly from: SiteId;
  readonly to: SiteId;
  /** Last enrolment acknowledged by `from` to the first acknowledged by `to`, as a client sees it. */
  readonly rto_s: number;
  /** Enrolments acknowledged by `from` whose certificate `to` does not hold. */
  readonly rpo_lost: number;
  /** How `from` rejoined as the standby in this run (its agent's record). */
  readonly rejoin: RejoinRecord;
}

/**
 * Repeated takeovers under steady online enrolment traffic, for the failover benchmark: both sites'
 * issuer-api run throughout (the standby's answers 503 until its site is active), a client enrols new
 * devices on whichever answers, and each run makes the active site give up the role in one way, then
 * waits until the other site acknowledges enrolments and the old one streams as its synchronous standby
 * again. The drills' code (EnrolmentTraffic, the agents, failoverTo, switchover) is what is measured.
 */
export class TakeoverRuns {
  private constructor(
    private readonly config: FleetConfig,
    private readonly traffic: EnrolmentTraffic,
    private readonly services: ChildProcess[],
    private readonly log: (line: string) => void,
  ) {}

  static async start(config: FleetConfig, options: { devices: number; log?: (line: string) => void }): Promise<TakeoverRuns> {
    const log = options.log ?? (() => undefined);
    const { primary, standby } = currentRoles(config);
    await waitForSyncStandby(config, primary, standby, 60_000);
    const db = createPool(primary.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 1, applicationName: 'fleetpki-bench' });
    let token: string;
    try {
      await registerSyntheticManufacturer(db, { site: primary.id, id: 'drill-meters', name: 'Drill Meters', actor: 'bench' });
      token = await issueApiToken(db, { site: primary.id, actor: 'bench', name: `bench-takeover-${Date.now()}`, role: 'factory', manufacturerId: 'drill-meters', expiresDays: 1 });
    } finally {
      await db.end();
    }
    const services = [primary, standby].map((site) => startService(config, 'issuer-api', { FLEETPKI_SITE: site.id }));
    // The sites' APIs at their configured URLs, https checked against the configured bundle.
    const https = new InternalHttps(config);
    await waitForHttp(`${primary.apiUrl}/readyz`, 60_000, { https, part: 'api' });
    log(`keys for ${options.devices} online enrolments ...`);
    const csrs = generateDeviceKeys(options.devices).map((k) => k.csr);
    // Two clients, each pausing 20 ms after an answer: a steady flow that resolves the RTO to a few tens of ms.
    const traffic = new EnrolmentTraffic([primary, standby], token, csrs, syntheticRunPrefix('drill-meters'), 20, https);
    traffic.start(2);
    return new TakeoverRuns(config, traffic, services, log);
  }

  /** One takeover of the kind given, from the active site to the other. */
  async run(kind: TakeoverKind): Promise<TakeoverRun> {
    const { primary: from, standby: to } = currentRoles(this.config);
    await waitForSyncStandby(this.config, from, to, 120_000);
    const before = this.traffic.acknowledged.length;
    await this.until(`site ${from.id} to acknowledge enrolments`, () => this.traffic.acknowledged.slice(before).filter((a) => a.site === from.id).length >= 20, 60_000);
    const started = Date.now();
    // The database host dies: under Patroni its Patroni with it (a PostgreSQL killed alone, Patroni restarts in place).
    if (kind === 'kill-postgres') this.log(`  site ${from.id}: kill -9 ${this.config.databaseHa === 'patroni' ? `Patroni (${killPatroni(from)}) and ` : ''}PostgreSQL (${killPostgres(from)} processes)`);
    else if (kind === 'forced') await failoverTo(this.config, to, { force: true, log: (l) => this.log(`  ${l}`) });
    else await switchover(this.config, 'bench failover', (l) => this.log(`  ${l}`));
    await this.until(`site ${to.id} to acknowledge enrolments`, () => this.traffic.acknowledged.some((a) => a.site === to.id && a.at > started), 180_000);
    const onFrom = this.traffic.acknowledged.filter((a) => a.site === from.id);
    const firstOnTo = Math.min(...this.traffic.acknowledged.filter((a) => a.site === to.id && a.at > started).map((a) => a.at));
    const lastOnFrom = Math.max(...onFrom.map((a) => a.at));
    // The old site rejoins as the new one's synchronous standby before the next run (the new site's
    // writes waited for that anyway: strict synchronous replication).
    await waitForSyncStandby(this.config, to, from, 180_000);
    const rejoin = await waitForRejoin(this.config, from, started);
    const check = createPool(to.databaseUrl, { security: pgLinkSecurity(this.config, 'owner'), max: 1, applicationName: 'fleetpki-bench' });
    try {
      return {
        kind,
        from: from.id,
        to: to.id,
        rto_s: Number(((firstOnTo - lastOnFrom) / 1000).toFixed(2)),
        rpo_lost: await countMissingCertificates(check, onFrom.map((a) => a.serial)),
        rejoin,
      };
    } finally {
      await check.end();
    }
  }

  async stop(): Promise<void> {
    await this.traffic.stop();
    await Promise.all(this.services.map(stopProcess));
  }

  private async until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new FleetError('BENCH_TAKEOVER_TIMEOUT', `timed out after ${timeoutMs / 1000} s waiting for ${what}; answers instead of certificates: ${JSON.stringify(Object.fromEntries(this.traffic.refusals))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** min / median / max of a list of figures (seconds), for the benchmark's summary. */
export function spread(values: readonly number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { min: sorted[0] ?? NaN, median: Number(median.toFixed(2)), max: sorted[sorted.length - 1] ?? NaN };
}

