// The backups of the CA's clusters: the stanza, full and differential backups from the primary, and what
// the repository holds. pgBackRest does the work (pgbackrest.ts); this module decides where to run it and
// reads its answers. The WAL archive's own state is wal-archive.ts's, what sites status shows backup-status.ts's.
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { ownerPool } from './ca-databases.js';
import { pgbackrest } from './pgbackrest.js';
import { currentRoles } from './topology-file.js';
import { archiverState } from './wal-archive.js';

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
  return currentRoles(config).primary;
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
