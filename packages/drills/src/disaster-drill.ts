// The disaster drill (`fleetpki drill disaster`): both sites' data directories and HSM tokens are lost
// at once, and the CA is rebuilt from what survives off the sites: the backup repository (database),
// the custodians' shares (keys), the configuration. It measures the time from "both gone" to the first
// certificate issued again, and what a two-site loss costs: the WAL not yet archived. docs/backup.md,
// "A disaster", is the runbook it follows.
import { X509Certificate } from 'node:crypto';
import { CA_IDS, issueApiToken, postgresCustodyStore, registerSyntheticManufacturer, restoreKeysFromShares, type CustodianShare } from '@fleetpki/ca';
import { FleetError, InternalHttps, type FleetConfig, type SiteId } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { syntheticRunPrefix } from '@fleetpki/manifest';
import {
  archiveUpToNow,
  archiverState,
  currentRoles,
  deleteSiteTokens,
  ensureAgent,
  ensurePrimary,
  ensureStandby,
  ensureTokens,
  killPostgres,
  ownerPool,
  pgDataDir,
  restoreSiteFromRepository,
  startService,
  stopAgent,
  stopProcess,
  takeBackup,
  waitForActiveSite,
  waitForHttp,
  waitForPostmasterExit,
  waitForSyncStandby,
  writeTopology,
} from '@fleetpki/sites';
import { certificateSummary, listCas, recordDrillRun, type Queryable } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { EnrolmentTraffic } from './probes.js';
import type { DrillEvent } from './failover-drill.js';

export interface DisasterDrillOptions {
  /** At least the threshold of the custodians' shares of the key-encryption key (`custody create`). */
  readonly shares: readonly CustodianShare[];
  /**
   * Archive the primary's WAL before the loss (a controlled drill: nothing lost). Without it the loss is
   * real: what the primary wrote after its last archived segment is gone, and the report counts it.
   */
  readonly archiveFirst: boolean;
  readonly log?: (line: string) => void;
}

export interface DisasterReport {
  readonly drill: 'disaster';
  /** The site rebuilt from the repository (the active one when disaster struck), and the one copied from it. */
  readonly restored_site: SiteId;
  readonly copied_site: SiteId;
  readonly archived_first: boolean;
  /** WAL segments written but not yet archived at the loss: the part of a two-site loss the archive cannot give back. */
  readonly segments_waiting_at_loss: number;
  readonly certificates_before: number;
  /** Certificates issued before the loss that the rebuilt CA does not hold. */
  readonly certificates_lost: number;
  readonly restore_s: number;
  readonly replay_s: number;
  readonly standby_copy_s: number;
  readonly keys_restored: Readonly<Record<string, readonly string[]>>;
  /** From "both data directories and tokens gone" to the first certificate issued by the rebuilt site. */
  readonly first_certificate_s: number;
  readonly new_certificate_serial: string;
  readonly new_certificate_verifies: boolean;
  /** The newest certificate from before the loss, checked against the rebuilt CA's issuing certificate. */
  readonly old_certificate_serial: string | null;
  readonly old_certificate_verifies: boolean | null;
  readonly backup_after: string;
  readonly timeline: readonly DrillEvent[];
}

/** Does `der` verify under the device issuing CA's certificate held in `db`? */
async function verifiesUnderIssuingCa(db: Queryable, der: Buffer): Promise<boolean> {
  const issuing = (await listCas(db)).find((c) => c.id === CA_IDS.deviceIssuing);
  if (!issuing) return false;
  const ca = new X509Certificate(issuing.certificate);
  const cert = new X509Certificate(der);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

export async function runDisasterDrill(config: FleetConfig, options: DisasterDrillOptions): Promise<DisasterReport> {
  const log = options.log ?? (() => undefined);
  const timeline: DrillEvent[] = [];
  const event = (what: string) => {
    timeline.push({ at: new Date().toISOString(), event: what });
    log(what);
  };
  const { primary: active, standby } = currentRoles(config);
  await waitForSyncStandby(config, active, standby, 5_000).catch((err: Error) => {
    throw new FleetError('DRILL_NOT_READY', `site ${standby.id} is not (yet) the synchronous standby of ${active.id}: ${err.message}`);
  });

  // What there is before: the certificates, the newest of them, what the archive would miss.
  const before = ownerPool(config, active, config.pgDatabase, { max: 1, applicationName: 'fleetpki-drill' });
  let summary;
  try {
    summary = await certificateSummary(before);
  } finally {
    await before.end();
  }
  if (options.archiveFirst) await archiveUpToNow(config);
  const waiting = (await archiverState(config, active)).waitingSegments;
  const lossAt = new Date();

  // The loss: both agents stopped (they would fight the rebuild), both clusters killed, both data
  // directories and both sites' tokens of this deployment deleted.
  for (const site of [standby, active]) await stopAgent(site);
  for (const site of [active, standby]) {
    killPostgres(site);
    await waitForPostmasterExit(site, log);
    rmSync(pgDataDir(site), { recursive: true, force: true });
    await deleteSiteTokens(config, site);
  }
  const stoppedAt = Date.now();
  const gone = performance.now();
  event(`both sites' data directories and HSM tokens are gone (${waiting} WAL segment(s) were waiting to be archived)`);

  let api: ChildProcess | undefined;
  try {
    const restored = await restoreSiteFromRepository(config, active, log);
    writeTopology(config, { primary: active.id });
    event(`site ${active.id} restored from the repository (${restored.restoreSeconds.toFixed(1)} s) and replayed the archive (${restored.recoverySeconds.toFixed(1)} s)`);
    const copyStarted = performance.now();
    await ensureStandby(config, standby, active);
    await ensurePrimary(config, active, standby);
    await waitForSyncStandby(config, active, standby);
    const standbyCopySeconds = (performance.now() - copyStarted) / 1000;
    event(`site ${standby.id} copied from ${active.id} and streaming as its synchronous standby (${standbyCopySeconds.toFixed(1)} s)`);

    // The agents: the active site's first, once the stopped agents' campaign keys have run out (a queued
    // old candidacy of the standby's would otherwise win: scripts/lib/restart-agents.ts).
    const keysExpire = stoppedAt + (config.consensus.ttlSeconds + 1) * 1000;
    if (Date.now() < keysExpire) await new Promise((r) => setTimeout(r, keysExpire - Date.now()));
    ensureAgent(config, active);
    await waitForActiveSite(config, active);
    ensureAgent(config, standby);
    event(`site ${active.id} is the active CA site again`);

    // The HSM side: new tokens, the CA and master keys from the custodians' shares, on both sites.
    const keysRestored: Record<string, readonly string[]> = {};
    for (const site of [active, standby]) {
      await ensureTokens(config, site);
      const db = ownerPool(config, site, config.pgDatabase, { max: 1, applicationName: 'fleetpki-drill' });
      const keyStore = await openSiteKeyStore(config, site, { sessions: 1 });
      try {
        keysRestored[site.id] = (await restoreKeysFromShares(postgresCustodyStore(db), keyStore, options.shares)).restored;
      } finally {
        await keyStore.close();
        await db.end();
      }
    }
    event(`keys restored from ${options.shares.length} custodian shares: ${Object.entries(keysRestored).map(([s, k]) => `site ${s} ${k.join(', ') || 'none'}`).join('; ')}`);

    // Issuance resumes: the rebuilt site's API, one device enrolled.
    const db = ownerPool(config, active, config.pgDatabase, { max: 1, applicationName: 'fleetpki-drill' });
    try {
      await registerSyntheticManufacturer(db, { site: active.id, id: 'drill-meters', name: 'Drill Meters', actor: 'drill' });
      const token = await issueApiToken(db, { site: active.id, actor: 'drill', name: 'drill-disaster', role: 'factory', manufacturerId: 'drill-meters', expiresDays: 1 });
      const https = new InternalHttps(config);
      api = startService(config, 'issuer-api', { FLEETPKI_SITE: active.id });
      await waitForHttp(`${active.apiUrl}/readyz`, 120_000, { https, part: 'api' });
      const traffic = new EnrolmentTraffic([active], token, generateDeviceKeys(1).map((k) => k.csr), syntheticRunPrefix('drill-meters'), 0, https);
      traffic.start(1);
      while (traffic.acknowledged.length === 0) await new Promise((r) => setTimeout(r, 20));
      const firstCertificateSeconds = (performance.now() - gone) / 1000;
      await traffic.stop();
      const issued = traffic.acknowledged[0]!;
      event(`site ${active.id} issued certificate ${issued.serial}: ${firstCertificateSeconds.toFixed(1)} s after both sites were lost`);

      const { rows } = await db.query<{ der: Buffer }>('SELECT der FROM certificates WHERE serial = $1', [Buffer.from(issued.serial, 'hex')]);
      const after = await certificateSummary(db, lossAt);
      const backup = await takeBackup(config, 'full');
      event(`full backup ${backup.label} taken on the new timeline`);
      const report: DisasterReport = {
        drill: 'disaster',
        restored_site: active.id,
        copied_site: standby.id,
        archived_first: options.archiveFirst,
        segments_waiting_at_loss: waiting,
        certificates_before: summary.count,
        certificates_lost: summary.count - after.count,
        restore_s: Number(restored.restoreSeconds.toFixed(2)),
        replay_s: Number(restored.recoverySeconds.toFixed(2)),
        standby_copy_s: Number(standbyCopySeconds.toFixed(2)),
        keys_restored: keysRestored,
        first_certificate_s: Number(firstCertificateSeconds.toFixed(2)),
        new_certificate_serial: issued.serial.toLowerCase(),
        new_certificate_verifies: rows[0] ? await verifiesUnderIssuingCa(db, rows[0].der) : false,
        old_certificate_serial: summary.last ? summary.last.serial.toString('hex') : null,
        old_certificate_verifies: summary.last ? await verifiesUnderIssuingCa(db, summary.last.der) : null,
        backup_after: backup.label,
        timeline,
      };
      await recordDrillRun(db, { kind: 'disaster', from: active.id, to: standby.id, rtoSeconds: report.first_certificate_s, rpoLost: report.certificates_lost, report: { ...report } });
      return report;
    } finally {
      await db.end();
    }
  } finally {
    if (api) await stopProcess(api);
  }
}
