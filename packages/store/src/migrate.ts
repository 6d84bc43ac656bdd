import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '@fleetpki/core';
import type { Pool } from './pool.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly sha256: string;
}

export interface MigrationResult {
  readonly applied: readonly Migration[];
  readonly alreadyApplied: number;
}

/** The file a migration came from, e.g. 0001_initial.sql. */
export function migrationFileName(m: Pick<Migration, 'version' | 'name'>): string {
  return `${String(m.version).padStart(4, '0')}_${m.name}.sql`;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/**
 * Earlier texts of a migration that a database may have recorded, accepted as that migration. Only for a
 * fix that changes no schema a successful run of the old text produced: 0015's first text failed (and
 * rolled back) on installations where one token name was used by two manufacturers; where it succeeded,
 * the fixed text would have done the same.
 */
const EARLIER_TEXTS: Readonly<Record<number, readonly string[]>> = {
  15: ['18c5420b6849afd4c17505ae52358b8d8efdae156c5fd2d6fe2babe17a3d1ea2'],
};
// Any constant works; it only has to be the same in every process that migrates this database.
const MIGRATION_LOCK_KEY = 0x666c6565; // 'flee'

/** Reads migrations/NNNN_name.sql in version order; refuses stray names and duplicate numbers. */
export async function readMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_PATTERN.exec(file);
    if (!match) throw new FleetError('MIGRATION_BAD_NAME', `migration file ${file} does not match NNNN_name.sql`);
    const sql = await readFile(join(dir, file), 'utf8');
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version)) throw new FleetError('MIGRATION_DUPLICATE', `two migrations are numbered ${match[1]}`);
    migrations.push({ version, name: match[2]!, sql, sha256: createHash('sha256').update(sql).digest('hex') });
  }
  return migrations;
}

/**
 * Applies every migration not yet recorded, in order, each in its own transaction with its record, so a
 * failure leaves the database at the last good version. Forward-only: an applied migration whose file
 * changed is an error (edit history with a new migration instead). An advisory lock makes concurrent
 * runners (two services starting at once) wait instead of racing.
 */
export async function migrate(pool: Pool, dir: string): Promise<MigrationResult> {
  const migrations = await readMigrations(dir);
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      sha256 text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; name: string; sha256: string }>('SELECT version, name, sha256 FROM schema_migrations ORDER BY version');
    const recorded = new Map(rows.map((r) => [r.version, r]));
    for (const row of rows) {
      const file = migrations.find((m) => m.version === row.version);
      if (!file) throw new FleetError('MIGRATION_MISSING', `the database has migration ${migrationFileName(row)} but ${dir} does not: is this checkout older than the database?`);
      if (file.sha256 !== row.sha256 && !EARLIER_TEXTS[row.version]?.includes(row.sha256)) throw new FleetError('MIGRATION_MODIFIED', `migration ${migrationFileName(row)} changed after it was applied; add a new migration instead`);
    }
    const applied: Migration[] = [];
    for (const migration of migrations) {
      if (recorded.has(migration.version)) continue;
      try {
        await client.query('BEGIN');
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)', [migration.version, migration.name, migration.sha256]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new FleetError('MIGRATION_FAILED', `migration ${migrationFileName(migration)} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(migration);
    }
    return { applied, alreadyApplied: recorded.size };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    client.release();
  }
}
