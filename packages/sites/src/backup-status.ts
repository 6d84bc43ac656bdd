// What `sites status` shows of the backups and the WAL archive.
import type { FleetConfig } from '@fleetpki/core';
import { repositoryInfo, type BackupType, type RepositoryInfo } from './backups.js';
import { archiverState, archivingFails, checkBackups, type ArchiverState } from './wal-archive.js';

/** What `sites status` shows of the backups: each part read on its own, so one broken part still shows the others. */
export interface BackupStatus {
  readonly repository: string;
  readonly info?: RepositoryInfo;
  readonly archiver?: ArchiverState;
  /** `pgbackrest check` passed (the archive path works end to end), or why not. */
  readonly check: { readonly ok: true; readonly seconds: number } | { readonly ok: false; readonly error: string };
  readonly errors: readonly string[];
}

export async function backupStatus(config: FleetConfig): Promise<BackupStatus> {
  const errors: string[] = [];
  const info = await repositoryInfo(config).catch((err: Error) => void errors.push(`info: ${err.message}`));
  const archiver = await archiverState(config).catch((err: Error) => void errors.push(`archiver: ${err.message}`));
  const started = Date.now();
  // A status answers in seconds: a segment not archived in 10 s counts as failing here.
  const check = await checkBackups(config, { archiveTimeoutSeconds: 10 }).then(
    () => ({ ok: true as const, seconds: (Date.now() - started) / 1000 }),
    (err: Error) => ({ ok: false as const, error: err.message.split('\n').filter(Boolean).slice(-1)[0] ?? err.message }),
  );
  return { repository: config.backup.repository, ...(info ? { info } : {}), ...(archiver ? { archiver } : {}), check, errors };
}

/** Rows for the status table: site, part, state, detail. */
export function backupStatusRows(b: BackupStatus): string[][] {
  const last = (type: BackupType) => [...(b.info?.backups ?? [])].reverse().find((x) => x.type === type);
  const full = last('full');
  const diff = last('diff');
  const rows = [
    ['-', 'backups', b.info?.status.code === 0 ? 'ok' : 'problem', `${b.repository}: ${b.info ? `${b.info.status.message}; last full ${full ? full.stoppedAt.toISOString() : 'none'}, last diff ${diff ? diff.stoppedAt.toISOString() : 'none'}; ${b.info.backups.length} kept` : b.errors.join('; ')}`],
    ['-', 'archive', b.check.ok ? 'ok' : 'FAILING', b.check.ok ? `check passed in ${b.check.seconds.toFixed(1)} s; WAL ${b.info?.archive.min ?? '-'} .. ${b.info?.archive.max ?? '-'}` : b.check.error],
  ];
  if (b.archiver) {
    const a = b.archiver;
    rows.push([a.site, 'archiver', archivingFails(a) ? 'FAILING' : a.archiveMode !== 'off' ? 'ok' : `archive_mode ${a.archiveMode}`, `${a.archived} archived, last at ${a.lastArchivedAt?.toISOString() ?? '-'}; ${a.waitingSegments} waiting${a.failed ? `; ${a.failed} failed attempts, last ${a.lastFailedAt?.toISOString() ?? '-'}` : ''}`]);
  }
  return rows;
}
