import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CA_IDS, issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { FleetApiClient, type BatchView } from '@fleetpki/client';
import { FleetError, InternalHttps, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { generateManifest, syntheticRunPrefix } from '@fleetpki/manifest';
import { currentRoles, killSiteInfrastructure, sitesUp, startService, stopProcess, waitForActiveSite, waitForHttp, waitForSyncStandby } from '@fleetpki/sites';
import {
  batchCertificatesBySerialPrefix,
  batchDevicesNotExactlyOne,
  countCertificates,
  countDuplicateIssuance,
  countMissingCertificates,
  createPool,
  highestCrlNumber,
  listCas,
  readSiteStates,
  recordDrillRun,
  pgLinkSecurity,
  type Pool,
} from '@fleetpki/store';
import { generateDeviceKeys, ocspIssuerHashes, parseCaCertificate } from '@fleetpki/x509';
import { EnrolmentTraffic, OcspProbe, killProcesses } from './probes.js';

export interface FailoverDrillOptions {
  /** Devices in the factory batch in flight when the active site dies. */
  readonly devices: number;
  /** Fraction of the batch issued before the kill. */
  readonly killAt?: number;
  readonly log?: (line: string) => void;
}

export interface FailoverDrillReport {
  readonly drill: 'failover';
  readonly from: string;
  readonly to: string;
  /** Last enrolment acknowledged by the failed site to the first acknowledged by the new one. */
  readonly rto_s: number;
  readonly promote_s: number;
  /** Certificates acknowledged by the failed site and missing on the new one. */
  readonly rpo_lost: number;
  /** (device, role, profile) with more than one certificate. */
  readonly duplicate_serials: number;
  readonly batch_devices_not_exactly_one: number;
  readonly batch_complete: boolean;
  readonly batch_devices: number;
  readonly batch_issued_before_kill: number;
  readonly batch_issued_by_site: Record<string, number>;
  readonly enrolments_acknowledged: Record<string, number>;
  readonly ocsp_answered: number;
  /** tryLater answers: the standby declining to vouch for a moment (OcspProbe). */
  readonly ocsp_try_later: number;
  readonly ocsp_failed: number;
  /** The first failures' reasons (OcspProbe.failures). */
  readonly ocsp_failures: readonly string[];
  readonly crl_number_before: string;
  readonly crl_number_after: string;
  readonly crl_numbers_continue: boolean;
  readonly certificates_stored: number;
  /** What happened when (ISO times): the kill, the promotion, the last acknowledgement of the failed site, the first of the new one. */
  readonly timeline: readonly DrillEvent[];
}

export interface DrillEvent {
  readonly at: string;
  readonly event: string;
}

async function serviceSet(config: FleetConfig, https: InternalHttps, site: SiteConfig, workers: number): Promise<ChildProcess[]> {
  const env = { FLEETPKI_SITE: site.id };
  const children = [startService(config, 'issuer-api', env), ...Array.from({ length: workers }, () => startService(config, 'batch-worker', env))];
  await waitForHttp(`${site.apiUrl}/readyz`, 60_000, { https, part: 'api' });
  return children;
}

/**
 * The unplanned failover drill: a factory batch in flight and online enrolments running on the active
 * site, every process of that site SIGKILLed (services, PostgreSQL, Redis), the standby promoted and
 * the failed site fenced, the standby's services started, and the batch finished there from the store.
 * Then the figures that prove it: RTO, RPO, duplicates, batch completion, OCSP during the drill, CRL
 * numbers after. The failed site is left down for `drill failback`.
 */
export async function runFailoverDrill(config: FleetConfig, options: FailoverDrillOptions): Promise<FailoverDrillReport> {
  const log = options.log ?? (() => undefined);
  await sitesUp(config);
  const { primary: from, standby: to } = currentRoles(config);
  // Zero loss needs a standby in sync; right after an earlier failover the failed site may still be rejoining.
  await waitForSyncStandby(config, from, to, 5_000).catch((err: Error) => {
    throw new FleetError('DRILL_NOT_READY', `site ${to.id} is not (yet) the synchronous standby of ${from.id}: ${err.message}`);
  });
  const dir = join(config.deploymentDir, 'drill');
  mkdirSync(dir, { recursive: true });

  // Every request to the sites' APIs and status responders: at their configured URLs, https checked against the configured bundle.
  const https = new InternalHttps(config);
  const dbFrom = createPool(from.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 2, applicationName: 'fleetpki-drill' });
  let dbTo: Pool | undefined;
  const children: ChildProcess[] = [];
  let toChildren: ChildProcess[] = [];
  let traffic: EnrolmentTraffic | undefined;
  let probe: OcspProbe | undefined;
  try {
    const states = await readSiteStates(dbFrom);
    if (states.find((s) => s.site === from.id)?.role !== 'active') throw new FleetError('DRILL_NOT_READY', `site ${from.id} is not the active CA site`);
    const issuing = (await listCas(dbFrom)).find((c) => c.id === CA_IDS.deviceIssuing);
    if (!issuing) throw new FleetError('CA_NOT_INITIALISED', 'no device issuing CA: run `pnpm fleetpki ceremony init` first');
    await registerSyntheticManufacturer(dbFrom, { site: from.id, id: 'drill-meters', name: 'Drill Meters', actor: 'drill' });
    const token = await issueApiToken(dbFrom, { site: from.id, actor: 'drill', name: 'drill-factory', role: 'factory', manufacturerId: 'drill-meters', expiresDays: 1 });
    const officerToken = await issueApiToken(dbFrom, { site: from.id, actor: 'drill', name: 'drill-officer', role: 'revocation-officer', manufacturerId: null, expiresDays: 1 });

    // The standby's status responder serves OCSP from its hot standby throughout; it must hold the CA key.
    log(`site ${to.id}: starting the status responder on the hot standby`);
    const toStatus = startService(config, 'status-responder', { FLEETPKI_SITE: to.id });
    toChildren.push(toStatus);
    await waitForHttp(`${to.statusUrl}/healthz`, 60_000, { https, part: 'status' });
    const health = (await https.json<{ signing: boolean }>('status', `${to.statusUrl}/healthz`)).body;
    if (!health.signing) throw new FleetError('DRILL_NOT_READY', `site ${to.id}'s HSM token has no clone of the CA key: run \`pnpm fleetpki custody restore --site ${to.id} --share ...\``);

    // Warm standby: the standby's issuer-api (503 to writes) and workers (idle) run before anything fails.
    log(`site ${to.id}: starting issuer-api and 2 batch workers as a warm standby`);
    toChildren.push(...(await serviceSet(config, https, to, 2)));
    log(`site ${from.id}: starting issuer-api, 2 batch workers, the status responder and the daemons`);
    children.push(...(await serviceSet(config, https, from, 2)), startService(config, 'status-responder', { FLEETPKI_SITE: from.id }));
    await waitForHttp(`${from.statusUrl}/healthz`, 60_000, { https, part: 'status' });
    // Each site's daemons (CRL publisher, OCSP pre-production, audit seals, and the reconcilers: the new
    // site's batch outbox queues the batch's unfinished chunks into its own Redis after the failover; they
    // work only while their site is active), started once the services answer rather than in the same
    // start-up burst. Both on one host here: no metrics port, so the second does not find it taken.
    children.push(startService(config, 'daemons', { FLEETPKI_SITE: from.id, FLEETPKI_METRICS_PORT: '0' }));
    toChildren.push(startService(config, 'daemons', { FLEETPKI_SITE: to.id, FLEETPKI_METRICS_PORT: '0' }));
    const manifest = join(dir, `failover-${options.devices}.ndjson`);
    log(`manifest of ${options.devices} devices ...`);
    await generateManifest({ devices: options.devices, out: manifest, euiPrefix: syntheticRunPrefix('drill-meters') });
    // Keys for the online enrolments, made before anything is timed (key generation blocks this process).
    const csrs = generateDeviceKeys(5_000).map((k) => k.csr);
    const client = FleetApiClient.forSite(config, from.id, token);
    const { batch } = await client.submitBatch(manifest);
    log(`batch ${batch.id} accepted by site ${from.id} (${batch.chunks.total} chunks)`);

    traffic = new EnrolmentTraffic([from, to], token, csrs, syntheticRunPrefix('drill-meters'), 0, https);
    traffic.start(4);
    while (traffic.acknowledged.length === 0) await new Promise((r) => setTimeout(r, 50));
    const probeSerial = Buffer.from(traffic.acknowledged[0]!.serial, 'hex');
    const issuer = parseCaCertificate(issuing.certificate);
    probe = new OcspProbe(to, ocspIssuerHashes(issuer.subjectDer, issuer.publicKeySpki), probeSerial, https);
    probe.start(100);

    const killAt = Math.floor(batch.certificatesRequested * (options.killAt ?? 0.3));
    let view: BatchView = batch;
    while (view.issued < killAt && view.status !== 'complete') {
      await new Promise((r) => setTimeout(r, 100));
      view = await client.getBatch(batch.id);
    }
    const crlBefore = await highestCrlNumber(dbFrom, issuing.id);

    log(`site ${from.id}: SIGKILL every process (batch at ${view.issued}/${view.certificatesRequested})`);
    const killedAt = Date.now();
    killProcesses(children);
    const killed = killSiteInfrastructure(from);
    await dbFrom.end().catch(() => undefined);
    log(`  ${killed + children.length} processes killed`);

    // Nothing is promoted by hand: the site agents and etcd fail over, as they would in a real disaster.
    const promoteStarted = performance.now();
    const epoch = await waitForActiveSite(config, to);
    const promoteSeconds = (performance.now() - promoteStarted) / 1000;
    const promotedAt = Date.now();
    log(`site ${to.id}: elected in etcd and active at epoch ${epoch}, ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill; its services see it within a second`);
    log(`site ${from.id}: its agent rewinds it into ${to.id}'s synchronous standby; writes on ${to.id} wait for that (RPO 0)`);

    const toClient = FleetApiClient.forSite(config, to.id, token);
    const done = await toClient.waitForBatch(batch.id, undefined, 250);
    while (!traffic.acknowledged.some((a) => a.site === to.id)) await new Promise((r) => setTimeout(r, 50));
    await traffic.stop();
    log(`batch ${done.status} on site ${to.id}: ${done.issued}/${done.certificatesRequested}`);

    // CRL numbers continue above the failed site's: revoke one device on the new site and wait for its shard.
    dbTo = createPool(to.databaseUrl, { security: pgLinkSecurity(config, 'owner'), max: 2, applicationName: 'fleetpki-drill' });
    const officer = FleetApiClient.forSite(config, to.id, officerToken);
    await officer.revoke({ serials: [traffic.acknowledged[traffic.acknowledged.length - 1]!.serial] }, 'cessationOfOperation');
    let crlAfter = await highestCrlNumber(dbTo, issuing.id);
    for (let i = 0; i < 100 && crlAfter <= crlBefore; i++) {
      await new Promise((r) => setTimeout(r, 100));
      crlAfter = await highestCrlNumber(dbTo, issuing.id);
    }
    probe.stop();

    const acknowledged = traffic.acknowledged;
    const onFrom = acknowledged.filter((a) => a.site === from.id);
    const onTo = acknowledged.filter((a) => a.site === to.id);
    const lastFrom = Math.max(...onFrom.map((a) => a.at));
    const firstTo = Math.min(...onTo.map((a) => a.at));
    const states2 = await readSiteStates(dbTo);
    const prefixes = new Map(states2.map((s) => [s.serialPrefix, s.site]));
    const bySite: Record<string, number> = {};
    for (const [prefix, n] of await batchCertificatesBySerialPrefix(dbTo, batch.id)) bySite[prefixes.get(prefix) ?? `prefix ${prefix}`] = n;
    const report: FailoverDrillReport = {
      drill: 'failover',
      from: from.id,
      to: to.id,
      rto_s: Number(((firstTo - lastFrom) / 1000).toFixed(2)),
      promote_s: Number(promoteSeconds.toFixed(2)),
      rpo_lost: await countMissingCertificates(dbTo, onFrom.map((a) => a.serial)),
      duplicate_serials: await countDuplicateIssuance(dbTo),
      batch_devices_not_exactly_one: await batchDevicesNotExactlyOne(dbTo, batch.id),
      batch_complete: done.status === 'complete' && done.issued === done.certificatesRequested,
      batch_devices: done.devices,
      batch_issued_before_kill: view.issued,
      batch_issued_by_site: bySite,
      enrolments_acknowledged: { [from.id]: onFrom.length, [to.id]: onTo.length },
      ocsp_answered: probe.answered,
      ocsp_try_later: probe.tryLater,
      ocsp_failed: probe.failed,
      ocsp_failures: probe.failures,
      crl_number_before: crlBefore.toString(),
      crl_number_after: crlAfter.toString(),
      crl_numbers_continue: crlAfter > crlBefore,
      certificates_stored: await countCertificates(dbTo),
      timeline: [
        { at: new Date(lastFrom).toISOString(), event: `last acknowledgement by site ${from.id}` },
        { at: new Date(killedAt).toISOString(), event: `site ${from.id} killed (SIGKILL, every process)` },
        { at: new Date(promotedAt).toISOString(), event: `site ${to.id} active (epoch ${epoch})` },
        { at: new Date(firstTo).toISOString(), event: `first acknowledgement by site ${to.id}` },
      ].sort((a, b) => a.at.localeCompare(b.at)),
    };
    // The history the console and auditors read, on the site now active.
    await recordDrillRun(dbTo, { kind: 'failover', from: from.id, to: to.id, rtoSeconds: report.rto_s, rpoLost: report.rpo_lost, report: { ...report } });
    return report;
  } finally {
    probe?.stop();
    await traffic?.stop();
    killProcesses(children);
    await Promise.all(toChildren.map(stopProcess));
    toChildren = [];
    await dbFrom.end().catch(() => undefined);
    await dbTo?.end();
  }
}
