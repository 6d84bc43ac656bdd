import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { createPool } from '@fleetpki/store';
import { isRoot, pgBinDir, run } from './exec.js';
import { osUserIds } from './os-user.js';
import { assertPortFree } from './ports.js';

/** The slot and application name B streams under; A's synchronous_standby_names waits for it. */
export const STANDBY_NAME = 'site_b';

export function pgDataDir(site: SiteConfig): string {
  return join(site.dir, 'pg');
}

function pg(bin: string): string {
  return join(pgBinDir(), bin);
}

/** Settings we own, in a file included from postgresql.conf, so a re-run of `sites up` can change them. */
function clusterSettings(config: FleetConfig, site: SiteConfig, primary: SiteConfig): string {
  const lines = [
    `# Written by fleetpki sites up; edits are overwritten. See infra/README.md.`,
    `port = ${site.pgPort}`,
    `listen_addresses = '127.0.0.1'`,
    // No Unix socket: the state folder path can exceed the 107-byte socket path limit, and TCP is enough.
    `unix_socket_directories = ''`,
    `cluster_name = 'fleetpki-${site.id}'`,
    `max_connections = 200`,
    `shared_buffers = 256MB`,
    `wal_level = replica`,
    `max_wal_senders = 10`,
    `max_replication_slots = 10`,
    // Needed by pg_rewind when a failed primary is rebuilt as the new primary's standby (failback).
    `wal_log_hints = on`,
    `hot_standby = on`,
    `hot_standby_feedback = on`,
    // RPO 0: a commit on the primary returns only once the standby has flushed it. If the standby is down,
    // commits wait (no silent degradation); operations decide, e.g. by promoting or by clearing this setting.
    `synchronous_standby_names = 'FIRST 1 (${STANDBY_NAME})'`,
    `synchronous_commit = on`,
    `log_destination = 'stderr'`,
    `log_min_messages = warning`,
  ];
  if (site.id === 'b') {
    lines.push(`primary_conninfo = 'host=127.0.0.1 port=${primary.pgPort} user=${config.pgUser} application_name=${STANDBY_NAME}'`);
    lines.push(`primary_slot_name = '${STANDBY_NAME}'`);
  }
  return lines.join('\n') + '\n';
}

function writeSettings(config: FleetConfig, site: SiteConfig): void {
  const dataDir = pgDataDir(site);
  const conf = join(dataDir, 'postgresql.conf');
  const include = `include_if_exists = 'fleetpki.conf'`;
  const text = readFileSync(conf, 'utf8');
  if (!text.includes(include)) writeFileSync(conf, `${text}\n${include}\n`);
  // pg_basebackup -R writes primary_conninfo into postgresql.auto.conf, which would win over ours.
  writeFileSync(join(dataDir, 'postgresql.auto.conf'), '# managed by fleetpki: see fleetpki.conf\n');
  writeFileSync(join(dataDir, 'fleetpki.conf'), clusterSettings(config, site, config.sites.a));
  chownToPgUser(join(dataDir, 'fleetpki.conf'), join(dataDir, 'postgresql.auto.conf'), conf);
}

function chownToPgUser(...paths: string[]): void {
  if (!isRoot) return;
  const { uid, gid } = osUserIds('postgres');
  for (const p of paths) chownSync(p, uid, gid);
}

function prepareDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownToPgUser(dir);
}

export async function isClusterRunning(site: SiteConfig): Promise<boolean> {
  const dataDir = pgDataDir(site);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) return false;
  try {
    await run(pg('pg_ctl'), ['status', '-D', dataDir], { asPgUser: true });
    return true;
  } catch {
    return false;
  }
}

/** Server log, outside the data directory so a base backup does not copy it to the other site. */
export function pgLogFile(site: SiteConfig): string {
  return join(site.dir, 'pg-log', 'postgresql.log');
}

async function startCluster(site: SiteConfig): Promise<void> {
  const dataDir = pgDataDir(site);
  await assertPortFree(site.pgPort, `PostgreSQL of site ${site.id}`, `FLEETPKI_PG_PORT_${site.id.toUpperCase()}`);
  prepareDir(join(site.dir, 'pg-log'));
  await run(pg('pg_ctl'), ['start', '-D', dataDir, '-l', pgLogFile(site), '-w', '-t', '60'], { asPgUser: true });
}

export async function stopCluster(site: SiteConfig, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!(await isClusterRunning(site))) return;
  await run(pg('pg_ctl'), ['stop', '-D', pgDataDir(site), '-m', mode, '-w', '-t', '60'], { asPgUser: true });
}

/** Creates (first run) and starts site A's primary cluster and the fleetpki database. */
export async function ensurePrimary(config: FleetConfig): Promise<'created' | 'started' | 'running'> {
  const site = config.sites.a;
  const dataDir = pgDataDir(site);
  let outcome: 'created' | 'started' | 'running' = 'running';
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    prepareDir(dataDir);
    await run(pg('initdb'), ['-D', dataDir, '-U', config.pgUser, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions'], { asPgUser: true });
    outcome = 'created';
  }
  writeSettings(config, site);
  if (!(await isClusterRunning(site))) {
    await startCluster(site);
    if (outcome === 'running') outcome = 'started';
  }
  const pool = createPool(`postgres://${config.pgUser}@127.0.0.1:${site.pgPort}/postgres`, { applicationName: 'fleetpki-sites', max: 1 });
  try {
    // Bootstrap statements must not wait for a standby that does not exist yet.
    const client = await pool.connect();
    try {
      await client.query(`SET synchronous_commit = local`);
      const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [config.pgDatabase]);
      if (db.rowCount === 0) await client.query(`CREATE DATABASE ${config.pgDatabase}`);
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
  return outcome;
}

/** Creates site B as a hot standby of A by base backup (first run) and starts it. */
export async function ensureStandby(config: FleetConfig): Promise<'created' | 'started' | 'running'> {
  const site = config.sites.b;
  const primary = config.sites.a;
  const dataDir = pgDataDir(site);
  let outcome: 'created' | 'started' | 'running' = 'running';
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    const pool = createPool(`postgres://${config.pgUser}@127.0.0.1:${primary.pgPort}/postgres`, { applicationName: 'fleetpki-sites', max: 1 });
    try {
      // A slot left from an earlier standby would hold WAL forever and make -C fail.
      await pool.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [STANDBY_NAME]);
    } finally {
      await pool.end();
    }
    prepareDir(dataDir);
    await run(
      pg('pg_basebackup'),
      ['-h', '127.0.0.1', '-p', String(primary.pgPort), '-U', config.pgUser, '-D', dataDir, '-X', 'stream', '-C', '-S', STANDBY_NAME, '-R', '--checkpoint=fast'],
      { asPgUser: true, timeoutMs: 600_000 },
    );
    outcome = 'created';
  }
  writeSettings(config, site);
  if (!(await isClusterRunning(site))) {
    await startCluster(site);
    if (outcome === 'running') outcome = 'started';
  }
  return outcome;
}
