// The restore drill (`fleetpki drill restore --to-time T`): the backup repository restored into a scratch
// cluster as of T, and proof of what it gave back, compared with the live database: the certificates
// issued by T, the last of them, the audit chain and its seals as they stood at T. The sites are never
// touched; the scratch cluster is removed at the end.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditCheckpointFile, verifyAuditLog } from '@fleetpki/ca';
import { FleetError, type FleetConfig, type SiteId } from '@fleetpki/core';
import { currentRoles, ownerPool, repositoryInfo, restoreToScratch } from '@fleetpki/sites';
import { certificateSerialPages, certificateSummary, recordDrillRun } from '@fleetpki/store';

export interface RestoreReport {
  readonly drill: 'restore';
  readonly target: string;
  /** The site whose configuration (and repository) the restore ran from: the primary's. */
  readonly source_site: SiteId;
  /** The backup PostgreSQL replayed from: the newest that ended by the target. */
  readonly backup: string;
  readonly restore_s: number;
  readonly recovery_s: number;
  readonly certificates_restored: number;
  /** The newest certificate in the restore, by commit time: the last one acknowledged by T. */
  readonly last_serial: string | null;
  readonly last_issued_at: string | null;
  /** Live certificates committed by T (commit times: track_commit_timestamp; else issued_at, the transaction's start). */
  readonly live_certificates_by_target: number;
  /** Whether "by T" above is read from commit times; without them a certificate committed just after T may count as missing. */
  readonly commit_times: boolean;
  /** Of those, not in the restore: a certificate the restore failed to give back. */
  readonly missing_from_restore: number;
  /** In the restore, no longer live: removed since T (what a restore gives back after a bad write). */
  readonly removed_since_target: number;
  readonly audit: { readonly rows: number; readonly sealed_up_to: string | null; readonly signed_seals: number; readonly checkpoints_by_target: number; readonly problems: readonly string[] };
  /**
   * The restore gave back exactly what was committed by T (nothing missing), and its audit chain and
   * seals verify against the checkpoints written by T (there must be some, when the restore has seals).
   */
  readonly verified: boolean;
}

/** Walks both sets in serial order, a page at a time: how many are only in `a`, and how many only in `b`. */
async function compareSerials(a: (after: Buffer | null) => Promise<Buffer[]>, b: (after: Buffer | null) => Promise<Buffer[]>): Promise<{ onlyA: number; onlyB: number }> {
  let pageA = await a(null);
  let pageB = await b(null);
  let i = 0;
  let j = 0;
  let onlyA = 0;
  let onlyB = 0;
  for (;;) {
    if (i === pageA.length && pageA.length) [pageA, i] = [await a(pageA[pageA.length - 1]!), 0];
    if (j === pageB.length && pageB.length) [pageB, j] = [await b(pageB[pageB.length - 1]!), 0];
    const x = pageA[i];
    const y = pageB[j];
    if (!x && !y) return { onlyA, onlyB };
    const order = !x ? 1 : !y ? -1 : Buffer.compare(x, y);
    if (order === 0) [i, j] = [i + 1, j + 1];
    else if (order < 0) [onlyA, i] = [onlyA + 1, i + 1];
    else [onlyB, j] = [onlyB + 1, j + 1];
  }
}

/** The checkpoint file as it stood at T: the lines written by then (each after its seal committed). */
function checkpointsAsOf(config: FleetConfig, target: Date, into: string): number {
  const file = auditCheckpointFile(config.deploymentDir);
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  const kept = lines.filter((line) => new Date((JSON.parse(line) as { at: string }).at) <= target);
  writeFileSync(into, kept.map((l) => `${l}\n`).join(''));
  return kept.length;
}

export async function runRestoreDrill(config: FleetConfig, options: { target: Date; log?: (line: string) => void }): Promise<RestoreReport> {
  const log = options.log ?? (() => undefined);
  const target = options.target;
  if (Number.isNaN(target.getTime())) throw new FleetError('INPUT_INVALID', '--to-time: not a time (expected ISO 8601, e.g. 2026-12-07T05:40:00Z)');
  // The database's clock, not this host's: the commit replay stops at is stamped by the primary.
  const { primary: source } = currentRoles(config);
  const clock = ownerPool(config, source, 'postgres', { max: 1, applicationName: 'fleetpki-restore-drill' });
  const dbNow = await clock.query<{ now: Date }>('SELECT now()').then((r) => r.rows[0]!.now).finally(() => clock.end());
  if (target.getTime() > dbNow.getTime()) throw new FleetError('INPUT_INVALID', `--to-time ${target.toISOString()} is in the future (the primary's clock says ${dbNow.toISOString()})`);
  const info = await repositoryInfo(config);
  const usable = info.backups.filter((b) => b.stoppedAt <= target);
  if (usable.length === 0) {
    const first = info.backups[0];
    throw new FleetError('RESTORE_TARGET_UNREACHABLE', first ? `--to-time ${target.toISOString()} is before the oldest backup the repository keeps (${first.label}, ended ${first.stoppedAt.toISOString()})` : 'the backup repository holds no backup yet: pnpm fleetpki backup run --type full');
  }
  const { primary } = currentRoles(config);
  const scratch = await restoreToScratch(config, { target, log });
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-restore-drill-'));
  const restored = ownerPool(config, scratch.site, config.pgDatabase, { applicationName: 'fleetpki-restore-drill', max: 1 });
  const live = ownerPool(config, primary, config.pgDatabase, { applicationName: 'fleetpki-restore-drill', max: 1 });
  try {
    log(`restored in ${scratch.restoreSeconds.toFixed(1)} s, recovered to ${target.toISOString()} in ${scratch.recoverySeconds.toFixed(1)} s; comparing with site ${primary.id}`);
    const inRestore = await certificateSummary(restored);
    const liveByTarget = await certificateSummary(live, target);
    const { onlyA: removed, onlyB: missing } = await compareSerials(await certificateSerialPages(restored, 10_000), await certificateSerialPages(live, 10_000, target));
    const checkpoints = join(work, 'checkpoints.ndjson');
    const checkpointCount = checkpointsAsOf(config, target, checkpoints);
    const audit = await verifyAuditLog(restored, checkpoints);
    const report: RestoreReport = {
      drill: 'restore',
      target: target.toISOString(),
      source_site: primary.id,
      backup: usable[usable.length - 1]!.label,
      restore_s: Number(scratch.restoreSeconds.toFixed(2)),
      recovery_s: Number(scratch.recoverySeconds.toFixed(2)),
      certificates_restored: inRestore.count,
      last_serial: inRestore.last ? inRestore.last.serial.toString('hex') : null,
      last_issued_at: inRestore.last ? inRestore.last.issuedAt.toISOString() : null,
      live_certificates_by_target: liveByTarget.count,
      commit_times: liveByTarget.commitTimes,
      missing_from_restore: missing,
      removed_since_target: removed,
      audit: { rows: audit.rows, sealed_up_to: audit.sealedUpTo, signed_seals: audit.signedSeals, checkpoints_by_target: checkpointCount, problems: audit.problems.map((p) => `${p.kind} at seq ${p.seq}: ${p.detail}`) },
      verified: audit.problems.length === 0 && missing === 0 && (checkpointCount > 0 || audit.sealedUpTo === null),
    };
    await recordDrillRun(live, { kind: 'restore', from: primary.id, to: null, rtoSeconds: Number((scratch.restoreSeconds + scratch.recoverySeconds).toFixed(2)), rpoLost: null, report: { ...report } });
    return report;
  } finally {
    await restored.end().catch(() => undefined);
    await live.end().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
    await scratch.remove();
  }
}
