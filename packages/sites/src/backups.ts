// The backups of the CA's clusters: the stanza, full and differential backups from the primary, what the
// repository holds, and whether WAL archiving keeps up. pgBackRest does the work (pgbackrest.ts); this
// module decides where to run it and reads its answers.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { ownerPool } from './ca-databases.js';
import { pgbackrest } from './pgbackrest.js';
import { pgDataDir } from './postmaster.js';
import { readTopology } from './topology-file.js';

export const BACKUP_TYPES = ['full', 'diff', 'incr'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

export interface BackupSet {
  readonly label: string;
  readonly type: BackupType;
  readonly startedAt: Date;
  readonly stoppedAt: Date;
  /** The cluster's size, and what the backup takes in the repository (compressed, encrypted, only the changed files for diff and incr). */
  readonly databaseBytes: number;
  readonly repositoryBytes: number;
  /** WAL needed to make it consistent. */
  readonly walStart: string;
  readonly walStop: string;
}

/** The primary's system identifier (a bigint: as text, JSON numbers lose its last digits). */
async function clusterSystemId(config: FleetConfig): Promise<string> {
  const pool = ownerPool(config, primaryOf(config), 'postgres', { applicationName: 'fleetpki-backup', max: 1 });
  try {
    return (await pool.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
  } finally {
    await pool.end();
  }
}

export interface RepositoryInfo {
  /** pgBackRest's status: 0 ok; otherwise its message (no stanza, missing backups, passphrase wrong...). */
  readonly status: { readonly code: number; readonly message: string };
  readonly backups: readonly BackupSet[];
  /** The oldest and newest WAL segment archived (null when none). */
  readonly archive: { readonly min: string | null; readonly max: string | null };
  /** The clusters the stanza was made for (PostgreSQL system identifiers, as text). */
  readonly systemIds: readonly string[];
}

/** The site whose cluster is primary now: backups are taken there (pgBackRest refuses a standby without backup-standby). */
function primaryOf(config: FleetConfig): SiteConfig {
  return config.sites[readTopology(config).primary];
}

/**
 * Creates the stanza (a no-op when it exists and matches the cluster), then, on a repository with no
 * backup yet, takes the first full one: until then the archive could not be restored from. A cluster
 * still running without archive_mode (an installation from before backups, not restarted since) gets
 * neither, and says so.
 */
export async function ensureStanza(config: FleetConfig): Promise<string> {
  const archiver = await archiverState(config);
  if (archiver.archiveMode === 'off') return 'archive_mode off: restart the primary';
  // The usual case, a stanza with backups, costs one read of the repository.
  const known = await repositoryInfo(config).catch(() => undefined);
  const cluster = await clusterSystemId(config);
  if (known?.systemIds.length && !known.systemIds.includes(cluster)) {
    // A cluster made anew (initdb) beside an old repository: archive-push refuses it, WAL piles up.
    return `FAILING: the repository's stanza belongs to cluster ${known.systemIds.join(', ')}, this primary is ${cluster}; restore from the repository (docs/backup.md) or move the old repository away and run sites up again`;
  }
  if (known && known.status.code === 0 && known.backups.length > 0) return 'ready';
  const out = await pgbackrest(config, primaryOf(config), 'stanza-create', { timeoutMs: 120_000, args: ['--log-level-console=info'] });
  const created = !/already exists/.test(out);
  if ((await repositoryInfo(config)).backups.length > 0) return created ? 'created' : 'ready';
  await takeBackup(config, 'full');
  return 'first backup taken';
}

/** Takes a backup from the primary (or from `from`), then expires what retention no longer keeps. Returns the new set. */
export async function takeBackup(config: FleetConfig, type: BackupType, from: SiteConfig = primaryOf(config)): Promise<BackupSet> {
  const before = new Set((await repositoryInfo(config)).backups.map((b) => b.label));
  // With no full backup to build on, pgBackRest takes a full one instead of a diff or incr: the set returned says which.
  await pgbackrest(config, from, 'backup', { args: [`--type=${type}`], timeoutMs: 6 * 3_600_000 });
  const made = (await repositoryInfo(config)).backups.find((b) => !before.has(b.label));
  if (!made) throw new FleetError('BACKUP_FAILED', 'pgbackrest backup ended without error, but the repository shows no new backup');
  return made;
}

/** Whether `site`'s cluster is the primary now, asked of the cluster itself (a timer on each database host backs up only where this is true). */
export async function isPrimaryNow(config: FleetConfig, site: SiteConfig): Promise<boolean> {
  const pool = ownerPool(config, site, 'postgres', { applicationName: 'fleetpki-backup', max: 1 });
  try {
    return !(await pool.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
  } finally {
    await pool.end();
  }
}

interface InfoJson {
  status: { code: number; message: string };
  archive?: { max?: string; min?: string }[];
  backup?: { label: string; type: BackupType; timestamp: { start: number; stop: number }; info: { size: number; repository: { delta: number } }; archive: { start: string; stop: string } }[];
}

/** What the repository holds, from `pgbackrest info --output=json` (reads the repository only, never the cluster). */
export async function repositoryInfo(config: FleetConfig): Promise<RepositoryInfo> {
  // Any site's configuration names the one repository: this host's own is the one a real host has.
  const out = await pgbackrest(config, config.sites[config.site], 'info', { args: ['--output=json', '--log-level-console=off'], timeoutMs: 60_000, stdoutOnly: true });
  const stanza = (JSON.parse(out) as InfoJson[])[0];
  if (!stanza) throw new FleetError('BACKUP_REPOSITORY_UNREADABLE', `pgbackrest info named no stanza: ${out.slice(0, 300)}`);
  const archive = stanza.archive ?? [];
  return {
    status: stanza.status,
    backups: (stanza.backup ?? []).map((b) => ({
      label: b.label,
      type: b.type,
      startedAt: new Date(b.timestamp.start * 1000),
      stoppedAt: new Date(b.timestamp.stop * 1000),
      databaseBytes: b.info.size,
      repositoryBytes: b.info.repository.delta,
      walStart: b.archive.start,
      walStop: b.archive.stop,
    })),
    archive: { min: archive[0]?.min ?? null, max: archive[archive.length - 1]?.max ?? null },
    // Read from the text: JSON.parse would round these 64-bit numbers.
    systemIds: [...new Set([...out.matchAll(/"system-id":(\d+)/g)].map((m) => m[1]!))],
  };
}

export interface ArchiverState {
  readonly site: SiteConfig['id'];
  readonly archiveMode: string;
  readonly archived: number;
  readonly failed: number;
  readonly lastArchivedWal: string | null;
  readonly lastArchivedAt: Date | null;
  readonly lastFailedWal: string | null;
  readonly lastFailedAt: Date | null;
  /** Segments written but not archived yet (.ready files): what a lost primary would take with it beyond the standby. */
  readonly waitingSegments: number;
}

/** The primary's archiver (pg_stat_archiver): is WAL reaching the repository, and how far behind is it? */
export async function archiverState(config: FleetConfig, site = primaryOf(config)): Promise<ArchiverState> {
  const pool = ownerPool(config, site, 'postgres', { applicationName: 'fleetpki-backup', max: 1 });
  try {
    const { rows } = await pool.query<{ archive_mode: string; archived_count: string; failed_count: string; last_archived_wal: string | null; last_archived_time: Date | null; last_failed_wal: string | null; last_failed_time: Date | null; waiting: string }>(
      `SELECT current_setting('archive_mode') AS archive_mode, archived_count, failed_count, last_archived_wal, last_archived_time, last_failed_wal, last_failed_time,
              (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS waiting
         FROM pg_stat_archiver`,
    );
    const r = rows[0]!;
    return {
      site: site.id,
      archiveMode: r.archive_mode,
      archived: Number(r.archived_count),
      failed: Number(r.failed_count),
      lastArchivedWal: r.last_archived_wal,
      lastArchivedAt: r.last_archived_time,
      lastFailedWal: r.last_failed_wal,
      lastFailedAt: r.last_failed_time,
      waitingSegments: Number(r.waiting),
    };
  } finally {
    await pool.end();
  }
}

/** Is archiving failing now: the last attempt failed (a later success clears it). */
export function archivingFails(state: ArchiverState): boolean {
  return state.lastFailedAt !== null && (state.lastArchivedAt === null || state.lastFailedAt > state.lastArchivedAt);
}

/**
 * `pgbackrest check`: switches the primary to a new WAL segment and waits until the repository has it,
 * so it proves the whole path (archive_command, repository, passphrase) end to end. Throws with
 * pgBackRest's own message when any link is broken.
 */
export async function checkBackups(config: FleetConfig, options: { archiveTimeoutSeconds?: number } = {}): Promise<void> {
  const wait = options.archiveTimeoutSeconds ?? 60;
  await pgbackrest(config, primaryOf(config), 'check', { timeoutMs: (wait + 60) * 1000, args: [`--archive-timeout=${wait}`] });
}

/**
 * Makes everything committed until now restorable to any time before now: a commit recorded now (an
 * xid assigned and committed: replay to a time T stops at the first commit after T, and a quiet
 * database may have none), then `check`, which archives the segment holding it.
 */
export async function archiveUpToNow(config: FleetConfig): Promise<void> {
  const pool = ownerPool(config, primaryOf(config), 'postgres', { applicationName: 'fleetpki-backup', max: 1 });
  try {
    await pool.query('SELECT txid_current()');
  } finally {
    await pool.end();
  }
  await checkBackups(config);
}

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

/**
 * After a promotion: pushes the WAL segments of the old timeline this site received as the standby
 * (with archive_mode = on a standby archives nothing, and marks what it streams as done). A primary that
 * died with segments not yet pushed would otherwise leave a hole in the archive that no restore could
 * cross. Each push is idempotent: a segment the old primary pushed already has the same checksum and is
 * taken as done; one whose content differs is refused by pgBackRest and named here.
 */
export async function archiveInheritedWal(config: FleetConfig, site: SiteConfig): Promise<{ pushed: number; failed: string[] }> {
  const dir = join(pgDataDir(site), 'pg_wal');
  const names = readdirSync(dir).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n));
  // The timeline followed as the standby: the newest before the one the promotion began. Older ones in
  // pg_wal (earlier failovers, kept by wal_keep_size) were pushed, or not, back then.
  const timelines = [...new Set(names.map((n) => parseInt(n.slice(0, 8), 16)))].sort((a, b) => b - a);
  const followed = timelines[1];
  const inherited = followed === undefined ? [] : names.filter((n) => parseInt(n.slice(0, 8), 16) === followed).sort();
  const failed: string[] = [];
  let pushed = 0;
  for (const name of inherited) {
    try {
      await pgbackrest(config, site, 'archive-push', { operands: [join(dir, name)], timeoutMs: 120_000 });
      pushed++;
    } catch (err) {
      failed.push(`${name}: ${/ERROR: \[\d+\]: [^\n]*/.exec((err as Error).message)?.[0] ?? (err as Error).message.slice(-300)}`);
    }
  }
  return { pushed, failed };
}
