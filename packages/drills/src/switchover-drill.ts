import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { DualControl, TokenAuthenticator, issueApiToken, registerSyntheticManufacturer, type Principal } from '@fleetpki/ca';
import { FleetError, InternalHttps, type FleetConfig } from '@fleetpki/core';
import type { RejoinRecord } from '@fleetpki/consensus';
import { currentRoles, ensureRedis, lastRejoin, sitesUp, startService, stopProcess, switchover, waitForHttp, waitForRejoin, waitForSyncStandby } from '@fleetpki/sites';
import { syntheticRunPrefix } from '@fleetpki/manifest';
import { countMissingCertificates, createPool, disablePeopleAsOwner, recordDrillRun, pgLinkSecurity } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { EnrolmentTraffic } from './probes.js';

export interface SwitchoverReport {
  readonly drill: 'switchover';
  readonly from: string;
  readonly to: string;
  readonly epoch: number;
  readonly switchover_s: number;
  /** Last enrolment acknowledged by the old active site to the first by the new one. */
  readonly downtime_s: number;
  readonly rpo_lost: number;
  readonly enrolments_acknowledged: Record<string, number>;
  /** What happened when (ISO times). */
  readonly timeline: readonly { at: string; event: string }[];
}

/**
 * Planned switchover with traffic: online enrolments run against the active site; its issuer-api is
 * stopped (in-flight requests finish), PostgreSQL switches over with zero loss (clean shutdown, promote,
 * rewind the old primary into the standby), and the new active site's issuer-api takes the traffic.
 */
export async function runSwitchoverDrill(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<SwitchoverReport> {
  await sitesUp(config);
  const { primary: from, standby: to } = currentRoles(config);
  await waitForSyncStandby(config, from, to, 5_000).catch((err: Error) => {
    throw new FleetError('DRILL_NOT_READY', `site ${to.id} is not (yet) the synchronous standby of ${from.id}: ${err.message}`);
  });
  // The sites' APIs at their configured URLs, https checked against the configured bundle.
  const https = new InternalHttps(config);
  const db = createPool(from.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 1, applicationName: 'fleetpki-drill' });
  let api: ChildProcess | undefined;
  let traffic: EnrolmentTraffic | undefined;
  try {
    await registerSyntheticManufacturer(db, { site: from.id, id: 'drill-meters', name: 'Drill Meters', actor: 'drill' });
    const token = await issueApiToken(db, { site: from.id, actor: 'drill', name: 'drill-switchover', role: 'factory', manufacturerId: 'drill-meters', expiresDays: 1 });
    await db.end();
    api = startService(config, 'issuer-api', { FLEETPKI_SITE: from.id });
    await waitForHttp(`${from.apiUrl}/readyz`, 60_000, { https, part: 'api' });
    traffic = new EnrolmentTraffic([from, to], token, generateDeviceKeys(5_000).map((k) => k.csr), syntheticRunPrefix('drill-meters'), 0, https);
    traffic.start(2);
    while (traffic.acknowledged.length < 50) await new Promise((r) => setTimeout(r, 20));
    log(`site ${from.id}: ${traffic.acknowledged.length} enrolments acknowledged; switching over to ${to.id}`);
    const started = performance.now();
    const startedAt = Date.now();
    await stopProcess(api);
    api = undefined;
    const result = await switchover(config, 'switchover drill', log);
    api = startService(config, 'issuer-api', { FLEETPKI_SITE: to.id });
    await waitForHttp(`${to.apiUrl}/readyz`, 60_000, { https, part: 'api' });
    const switchoverSeconds = (performance.now() - started) / 1000;
    while (!traffic.acknowledged.some((a) => a.site === to.id)) await new Promise((r) => setTimeout(r, 20));
    await traffic.stop();
    const onFrom = traffic.acknowledged.filter((a) => a.site === from.id);
    const onTo = traffic.acknowledged.filter((a) => a.site === to.id);
    const check = createPool(to.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 1, applicationName: 'fleetpki-drill' });
    try {
      const lastFrom = Math.max(...onFrom.map((a) => a.at));
      const firstTo = Math.min(...onTo.map((a) => a.at));
      const report: SwitchoverReport = {
        drill: 'switchover',
        from: from.id,
        to: to.id,
        epoch: result.epoch,
        switchover_s: Number(switchoverSeconds.toFixed(2)),
        downtime_s: Number(((firstTo - lastFrom) / 1000).toFixed(2)),
        rpo_lost: await countMissingCertificates(check, onFrom.map((a) => a.serial)),
        enrolments_acknowledged: { [from.id]: onFrom.length, [to.id]: onTo.length },
        timeline: [
          { at: new Date(startedAt).toISOString(), event: `switchover to site ${to.id} begins` },
          { at: new Date(lastFrom).toISOString(), event: `last acknowledgement by site ${from.id}` },
          { at: new Date(firstTo).toISOString(), event: `first acknowledgement by site ${to.id}` },
        ].sort((a, b) => a.at.localeCompare(b.at)),
      };
      await recordDrillRun(check, { kind: 'switchover', from: from.id, to: to.id, rtoSeconds: report.downtime_s, rpoLost: report.rpo_lost, report: { ...report } });
      return report;
    } finally {
      await check.end();
    }
  } finally {
    await traffic?.stop();
    if (api) await stopProcess(api);
    await db.end().catch(() => undefined);
  }
}

export interface FailbackReport {
  readonly drill: 'failback';
  readonly rebuilt: string;
  readonly how: RejoinRecord['how'];
  /** The rebuild's own time, by its agent (pg_rewind or base backup, start, streaming again). */
  readonly rebuild_s: number;
  /** How long this waited for the site to stream as the synchronous standby. */
  readonly waited_s: number;
  readonly switched_back: boolean;
  readonly switchover_s: number;
  readonly active: string;
}

/**
 * The planned switchover back after a failover is a planned switchover like any other: it runs only as
 * the execution of an approved site.switchover request, by its requester or approver.
 */
export interface SwitchBackApproval {
  readonly approvalId: string;
  readonly executor: Principal;
  /** Made for this switch back only (approvedSwitchoverForDrill): disabled once it is done. */
  readonly throwAwayPeople?: readonly string[];
}

export interface FailbackOptions {
  readonly switchBack?: SwitchBackApproval;
  /** When the failover began (ms since the epoch): the rebuild reported is the first one after it. Without it, the last one recorded. */
  readonly failedOverAt?: number;
  readonly log?: (line: string) => void;
}

/**
 * After a failover: the failed site's agent rewinds it into the standby of the surviving one on its own
 * (pg_rewind, else a base backup); this waits for that (and restarts its Redis), then, given an approved
 * site.switchover, a planned switchover makes it active again. Without one it stays the standby (the
 * rebuild is recovery, not a change of who is active).
 */
export async function runFailback(config: FleetConfig, options: FailbackOptions = {}): Promise<FailbackReport> {
  const log = options.log ?? (() => undefined);
  // The failed site is the standby now, whichever site it is (a drill may start from either).
  const { primary, standby: site } = currentRoles(config);
  if (options.failedOverAt === undefined && !(await lastRejoin(config, site))) {
    throw new FleetError('DRILL_NOT_READY', `site ${site.id} never rejoined as a standby: no failover to fail back from`);
  }
  let t = performance.now();
  await waitForSyncStandby(config, primary, site);
  await ensureRedis(site, config);
  const waited = (performance.now() - t) / 1000;
  const rejoin = await waitForRejoin(config, site, options.failedOverAt ?? 0);
  log(`site ${site.id}: the synchronous standby of ${primary.id} (${rejoin.how} in ${rejoin.seconds} s by its agent${rejoin.why ? `: ${rejoin.why}` : ''})`);
  let switchoverSeconds = 0;
  if (options.switchBack) {
    const approval = options.switchBack;
    // The approval lives on the active site's database; the claim commits there before the switch.
    const db = createPool(primary.serviceDatabaseUrls.operator, { security: pgLinkSecurity(config, 'operator'), max: 2, applicationName: 'fleetpki-failback' });
    try {
      t = performance.now();
      await new DualControl(db, primary.id, config.dualControl.approvalTtlMinutes).execute(approval.executor, approval.approvalId, 'site.switchover', () => switchover(config, approval.executor.name, log));
      switchoverSeconds = (performance.now() - t) / 1000;
    } finally {
      await db.end().catch(() => undefined);
      if (approval.throwAwayPeople?.length) await disableThrowAwayPeople(config, approval.throwAwayPeople, log);
    }
  }
  const active = currentRoles(config).primary;
  const report: FailbackReport = {
    drill: 'failback',
    rebuilt: site.id,
    how: rejoin.how,
    rebuild_s: rejoin.seconds,
    waited_s: Number(waited.toFixed(2)),
    switched_back: options.switchBack !== undefined,
    switchover_s: Number(switchoverSeconds.toFixed(2)),
    active: active.id,
  };
  // In the drill history (console, auditors) like failovers and switchovers, on the site active now.
  // Its "RTO" is the switch back's own time; nothing acknowledged is at stake in a rebuild (no RPO).
  const history = createPool(active.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 1, applicationName: 'fleetpki-drill' });
  try {
    await recordDrillRun(history, { kind: 'failback', from: primary.id, to: report.active, rtoSeconds: report.switched_back ? report.switchover_s : null, rpoLost: null, report: { ...report } });
  } finally {
    await history.end().catch(() => undefined);
  }
  return report;
}

/**
 * For drills and benchmarks on a test installation: two administrators made with the owner's access
 * request and approve a site.switchover on the active site; returns what runFailback needs. A real
 * installation's administrators use `approvals request site.switchover` and `approvals approve`.
 */
export async function approvedSwitchoverForDrill(config: FleetConfig): Promise<SwitchBackApproval> {
  const primary = currentRoles(config).primary;
  const owner = createPool(primary.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 2, applicationName: 'fleetpki-drill' });
  try {
    const suffix = randomUUID().slice(0, 8);
    const [first, second] = await Promise.all([1, 2].map((n) => issueApiToken(owner, { site: primary.id, actor: 'drill', name: `drill-admin-${n}-${suffix}`, role: 'administrator', manufacturerId: null, expiresDays: 1 })));
    const authenticator = new TokenAuthenticator(owner);
    const dual = new DualControl(owner, primary.id, config.dualControl.approvalTtlMinutes);
    const executor = await authenticator.authenticate(`Bearer ${first}`);
    const request = await dual.request(executor, 'site.switchover', { back: true }, 'drill: switch back after the failover drill');
    await dual.approve(await authenticator.authenticate(`Bearer ${second}`), request.id);
    return { approvalId: request.id, executor, throwAwayPeople: [1, 2].map((n) => `drill-admin-${n}-${suffix}`) };
  } finally {
    await owner.end();
  }
}

/**
 * The drill's two administrators exist for one switch back: left enabled, they would be administrators
 * of the installation nobody holds (and `fleetpki bootstrap` after the demo would refuse, BOOTSTRAP_DONE).
 */
async function disableThrowAwayPeople(config: FleetConfig, names: readonly string[], log: (line: string) => void): Promise<void> {
  const owner = createPool(currentRoles(config).primary.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 1, applicationName: 'fleetpki-drill' });
  try {
    const n = await disablePeopleAsOwner(owner, names);
    log(`disabled the drill's ${n} throw-away administrators`);
  } catch (err) {
    log(`could not disable the drill's throw-away administrators (${names.join(', ')}): ${(err as Error).message}`);
  } finally {
    await owner.end().catch(() => undefined);
  }
}
