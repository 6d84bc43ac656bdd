// The WAL archive: is it keeping up (the primary's archiver), proving the path end to end, making the
// archive reach now, and closing the hole a promotion could leave (the old timeline's last segments).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { ownerPool } from './ca-databases.js';
import { pgbackrest } from './pgbackrest.js';
import { pgDataDir } from './postmaster.js';
import { currentRoles } from './topology-file.js';

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
export async function archiverState(config: FleetConfig, site = currentRoles(config).primary): Promise<ArchiverState> {
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
  await pgbackrest(config, currentRoles(config).primary, 'check', { timeoutMs: (wait + 60) * 1000, args: [`--archive-timeout=${wait}`] });
}

/**
 * Makes everything committed until now restorable to any time before now: a commit recorded now (an
 * xid assigned and committed: replay to a time T stops at the first commit after T, and a quiet
 * database may have none), then `check`, which archives the segment holding it.
 */
export async function archiveUpToNow(config: FleetConfig): Promise<void> {
  const pool = ownerPool(config, currentRoles(config).primary, 'postgres', { applicationName: 'fleetpki-backup', max: 1 });
  try {
    await pool.query('SELECT txid_current()');
  } finally {
    await pool.end();
  }
  await checkBackups(config);
}

/**
 * After a promotion: pushes the segments of the old timeline this site received as the standby and
 * marked done without archiving them (with archive_mode = on a standby archives nothing). A primary that
 * died with segments not yet pushed would otherwise leave a hole in the archive that no restore could
 * cross. Only `.done` ones: the promotion's own `.partial` and anything `.ready` are PostgreSQL's
 * archiver's to push, and two pushers of one file would write one temporary file in the repository.
 * Each push is idempotent (a segment the old primary pushed has the same checksum and is taken as done);
 * one the checkpoint after the promotion recycled meanwhile is counted as gone.
 */
export async function archiveInheritedWal(config: FleetConfig, site: SiteConfig): Promise<{ pushed: number; gone: number; failed: string[] }> {
  const dir = join(pgDataDir(site), 'pg_wal');
  const done = new Set(readdirSync(join(dir, 'archive_status')).filter((n) => n.endsWith('.done')).map((n) => n.slice(0, -'.done'.length)));
  const names = readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n));
  // The timeline followed as the standby: the newest before the one the promotion began. Older ones in
  // pg_wal (earlier failovers, kept by wal_keep_size) were dealt with back then.
  const timelines = [...new Set(names.map((n) => parseInt(n.slice(0, 8), 16)))].sort((a, b) => b - a);
  const followed = timelines[1];
  const inherited = followed === undefined ? [] : names.filter((n) => parseInt(n.slice(0, 8), 16) === followed && done.has(n)).sort();
  const failed: string[] = [];
  let pushed = 0;
  let gone = 0;
  for (const name of inherited) {
    if (!existsSync(join(dir, name))) {
      gone++;
      continue;
    }
    try {
      await pgbackrest(config, site, 'archive-push', { operands: [join(dir, name)], timeoutMs: 120_000 });
      pushed++;
    } catch (err) {
      if (!existsSync(join(dir, name))) gone++;
      else failed.push(`${name}: ${/ERROR: \[\d+\]: [^\n]*/.exec((err as Error).message)?.[0] ?? (err as Error).message.slice(-300)}`);
    }
  }
  return { pushed, gone, failed };
}
