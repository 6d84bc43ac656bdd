// The disaster drill (`fleetpki drill disaster`): both sites' data directories and HSM tokens are lost
// at once, and the CA is rebuilt from what survives off the sites: the backup repository (database),
// the custodians' shares (keys), the configuration. It measures the time from "both gone" to the first
// certificate issued again, and what a two-site loss costs: the WAL not yet archived. docs/backup.md,
// "A disaster", is the runbook it follows.
import { X509Certificate } from 'node:crypto';
import { CA_IDS, checkCustodyShares, issueApiToken, postgresCustodyStore, registerSyntheticManufacturer, restoreKeysFromShares, type CustodianShare } from '@fleetpki/ca';
import { FleetError, InternalHttps, type FleetConfig, type SiteId } from '@fleetpki/core';
import { openSiteKeyStore, parsePkcs11Uri } from '@fleetpki/hsm';
import { syntheticRunPrefix } from '@fleetpki/manifest';
import {
  agentPid,
  archiveUpToNow,
  archiverState,
  checkBackups,
  currentRoles,
  deleteSiteTokens,
  ensureAgent,
  ensurePrimary,
  ensureStandby,
  ensureTokens,
  hostOwnFile,
  killPostgres,
  ownerPool,
  pgDataDir,
  repositoryInfo,
  restoreSiteFromRepository,
  startService,
  stopAgent,
  stopProcess,
  takeBackup,
  takeOver,
  waitForActiveSite,
  waitForHttp,
  waitForPostmasterExit,
  waitForSyncStandby,
  writeTopology,
} from '@fleetpki/sites';
import { certificateDer, certificateSummary, listCas, listMasterKeys, lossSnapshot, recordDrillRun, revocationCount, type Queryable } from '@fleetpki/store';
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
  /** Who started it (the custodian whose token the CLI checked), for the record. */
  readonly startedBy: string;
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
  /** WAL written after the last archived segment at the loss (the waiting segments and the open one), in bytes. */
  readonly unarchived_wal_bytes: number;
  readonly certificates_before: number;
  /** Certificates committed before the loss that the rebuilt CA does not hold. */
  readonly certificates_lost: number;
  /** Revocations recorded before the loss that the rebuilt CA does not hold: revoked certificates that would answer good again. */
  readonly revocations_lost: number;
  readonly restore_s: number;
  readonly replay_s: number;
  readonly standby_copy_s: number;
  readonly keys_restored: Readonly<Record<string, readonly string[]>>;
  /** From "both data directories and tokens gone" to the first certificate issued by the rebuilt site. */
  readonly first_certificate_s: number;
  readonly new_certificate_serial: string;
  readonly new_certificate_verifies: boolean;
  /** The newest certificate from before the loss: is it in the rebuilt database, and does it verify under the rebuilt CA's issuing certificate? */
  readonly old_certificate_serial: string | null;
  readonly old_certificate_present: boolean | null;
  readonly old_certificate_verifies: boolean | null;
  readonly backup_after: string;
  readonly started_by: string;
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

  // Before anything is lost, everything the rebuild needs: this is the local simulation (agents of ours,
  // no host's own configuration file: on a real host this drill is the runbook, step by step), the
  // shares rebuild the key-encryption key, and the repository holds a backup and receives WAL.
  if (hostOwnFile(config)) throw new FleetError('DRILL_REFUSED', `the disaster drill runs on the local simulation only; this host reads its own configuration (${hostOwnFile(config)}): follow docs/backup.md, "A disaster", instead`);
  for (const site of [active, standby]) {
    if (agentPid(site) === undefined) throw new FleetError('DRILL_REFUSED', `site ${site.id}'s agent is not a process of the local simulation (run by systemd, or not running): the disaster drill would delete a cluster under it`);
  }
  const db = ownerPool(config, active, config.pgDatabase, { max: 1, applicationName: 'fleetpki-drill' });
  let summary;
  let custody;
  try {
    custody = await checkCustodyShares(postgresCustodyStore(db), options.shares);
    // Every key the sites sign with must come back from custody: a CA made after the last custody
    // ceremony (or a master key) would be lost for good. Revoked CAs' keys are left out on purpose.
    const needed = [
      ...(await listCas(db)).filter((ca) => ca.kind !== 'root' && ca.status !== 'revoked').map((ca) => parsePkcs11Uri(ca.keyUri)).filter((uri) => uri.token === active.hsmTokenLabel).map((uri) => uri.object),
      ...(await listMasterKeys(db)).map((m) => m.keyLabel),
    ];
    const uncovered = needed.filter((label) => !custody!.keys.includes(label));
    if (uncovered.length) throw new FleetError('DRILL_NOT_READY', `key-encryption key ${custody.kekId} does not carry ${uncovered.join(', ')}: a rebuild would lose them; run \`fleetpki custody create\` again and use its shares`);
    summary = await certificateSummary(db);
  } finally {
    await db.end();
  }
  if ((await repositoryInfo(config)).backups.length === 0) throw new FleetError('DRILL_NOT_READY', 'the backup repository holds no backup to rebuild from: pnpm fleetpki backup run --type full');
  if (options.archiveFirst) await archiveUpToNow(config);
  else await checkBackups(config);
  log(`checked: the shares rebuild key-encryption key ${custody.kekId} (${custody.keys.join(', ')}); the repository receives WAL`);

  // The loss: both agents stopped (they would fight the rebuild), both clusters killed, both data
  // directories and both sites' tokens of this deployment deleted. What is lost is measured on the
  // database's own clock and WAL position, taken last before the kill.
  for (const site of [standby, active]) await stopAgent(site);
  const archiver = await archiverState(config, active);
  const snapshotDb = ownerPool(config, active, config.pgDatabase, { max: 1, applicationName: 'fleetpki-drill' });
  const before = await lossSnapshot(snapshotDb).finally(() => snapshotDb.end());
  const unarchivedBytes = walBytesAfter(archiver.lastArchivedWal, before.lsn);
  for (const site of [active, standby]) {
    killPostgres(site);
    await waitForPostmasterExit(site, log);
    rmSync(pgDataDir(site), { recursive: true, force: true });
    await deleteSiteTokens(config, site);
  }
  const stoppedAt = Date.now();
  const gone = performance.now();
  event(`both sites' data directories and HSM tokens are gone (${archiver.waitingSegments} WAL segment(s) waiting to be archived, ${unarchivedBytes} bytes of WAL after the last archived segment)`);
  let stage = `restoring site ${active.id} from the repository`;

  let api: ChildProcess | undefined;
  try {
    const restored = await restoreSiteFromRepository(config, active, log);
    writeTopology(config, { primary: active.id });
    event(`site ${active.id} restored from the repository (${restored.restoreSeconds.toFixed(1)} s) and replayed the archive (${restored.recoverySeconds.toFixed(1)} s)`);
    stage = `copying site ${standby.id} from ${active.id}`;
    const copyStarted = performance.now();
    await ensureStandby(config, standby, active);
    await ensurePrimary(config, active, standby);
    await waitForSyncStandby(config, active, standby);
    const standbyCopySeconds = (performance.now() - copyStarted) / 1000;
    event(`site ${standby.id} copied from ${active.id} and streaming as its synchronous standby (${standbyCopySeconds.toFixed(1)} s)`);

    // A new epoch: the restored site_state may predate the last activation (not yet archived at the loss).
    await takeOver(config, active, 'rebuilt from the backup repository (disaster drill)');
    stage = 'starting the agents';
    // The agents: the active site's first, once the stopped agents' campaign keys have run out (a queued
    // old candidacy of the standby's would otherwise win: scripts/lib/restart-agents.ts).
    const keysExpire = stoppedAt + (config.consensus.ttlSeconds + 1) * 1000;
    if (Date.now() < keysExpire) await new Promise((r) => setTimeout(r, keysExpire - Date.now()));
    ensureAgent(config, active);
    await waitForActiveSite(config, active);
    ensureAgent(config, standby);
    event(`site ${active.id} is the active CA site again`);

    stage = 'restoring the keys into new tokens';
    // The HSM side: new tokens, the CA and master keys from the custodians' shares, on both sites.
    const keysRestored: Record<string, readonly string[]> = {};
    for (const site of [active, standby]) {
      await ensureTokens(config, site);
      const db = ownerPool(config, site, config.pgDatabase, { max: 1, applicationName: 'fleetpki-drill' });
      const keyStore = await openSiteKeyStore(config, site, { sessions: 1 });
      try {
        // The active site's keys as they were generated (cloneable under a trusted wrap), so a custody
        // ceremony can run again there; the standby's as clones (final).
        keysRestored[site.id] = (await restoreKeysFromShares(postgresCustodyStore(db), keyStore, options.shares, { cloneable: site.id === active.id })).restored;
      } finally {
        await keyStore.close();
        await db.end();
      }
    }
    event(`keys restored from ${options.shares.length} custodian shares: ${Object.entries(keysRestored).map(([s, k]) => `site ${s} ${k.join(', ') || 'none'}`).join('; ')}`);

    stage = 'issuing again';
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
      const deadline = Date.now() + 120_000;
      while (traffic.acknowledged.length === 0) {
        if (Date.now() > deadline) {
          await traffic.stop();
          throw new FleetError('DRILL_FAILED', `site ${active.id} issued nothing within 120 s: ${[...traffic.refusals].map(([k, n]) => `${k} x${n}`).join(', ') || 'no answer'}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      const firstCertificateSeconds = (performance.now() - gone) / 1000;
      await traffic.stop();
      const issued = traffic.acknowledged[0]!;
      event(`site ${active.id} issued certificate ${issued.serial}: ${firstCertificateSeconds.toFixed(1)} s after both sites were lost`);

      const issuedDer = await certificateDer(db, Buffer.from(issued.serial, 'hex'));
      const after = await certificateSummary(db, before.at);
      const oldDer = summary.last ? await certificateDer(db, summary.last.serial) : undefined;
      const backup = await takeBackup(config, 'full');
      event(`full backup ${backup.label} taken on the new timeline`);
      const report: DisasterReport = {
        drill: 'disaster',
        restored_site: active.id,
        copied_site: standby.id,
        archived_first: options.archiveFirst,
        segments_waiting_at_loss: archiver.waitingSegments,
        unarchived_wal_bytes: unarchivedBytes,
        certificates_before: before.certificates,
        certificates_lost: before.certificates - after.count,
        revocations_lost: before.revocations - (await revocationCount(db, before.at)),
        restore_s: Number(restored.restoreSeconds.toFixed(2)),
        replay_s: Number(restored.recoverySeconds.toFixed(2)),
        standby_copy_s: Number(standbyCopySeconds.toFixed(2)),
        keys_restored: keysRestored,
        first_certificate_s: Number(firstCertificateSeconds.toFixed(2)),
        new_certificate_serial: issued.serial.toLowerCase(),
        new_certificate_verifies: issuedDer ? await verifiesUnderIssuingCa(db, issuedDer) : false,
        old_certificate_serial: summary.last ? summary.last.serial.toString('hex') : null,
        old_certificate_present: summary.last ? oldDer !== undefined : null,
        old_certificate_verifies: summary.last ? oldDer !== undefined && (await verifiesUnderIssuingCa(db, oldDer)) : null,
        backup_after: backup.label,
        started_by: options.startedBy,
        timeline,
      };
      await recordDrillRun(db, { kind: 'disaster', from: active.id, to: standby.id, rtoSeconds: report.first_certificate_s, rpoLost: report.certificates_lost, report: { ...report } });
      return report;
    } finally {
      await db.end();
    }
  } catch (err) {
    // The CA is down here: say where the rebuild stopped and where the runbook takes over.
    throw new FleetError('DRILL_FAILED', `CA DOWN: the disaster drill failed while ${stage}: ${(err as Error).message}. Both sites' agents are stopped; continue by hand from docs/backup.md, "A disaster"`, { cause: err });
  } finally {
    if (api) await stopProcess(api);
  }
}

/** Bytes of WAL from the end of the last archived segment to `lsn` (segments are 16 MB; timeline ignored). */
function walBytesAfter(lastArchived: string | null, lsn: string): number {
  const [hi, lo] = lsn.split('/').map((h) => BigInt(`0x${h}`));
  const at = (hi! << 32n) | lo!;
  const m = lastArchived ? /^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})$/.exec(lastArchived) : null;
  if (!m) return Number(at);
  const end = ((BigInt(`0x${m[1]}`) << 32n) | (BigInt(`0x${m[2]}`) * 0x1000000n)) + 0x1000000n;
  return at > end ? Number(at - end) : 0;
}
