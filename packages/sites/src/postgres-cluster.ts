// The local simulation's PostgreSQL clusters: initdb, settings, start/stop, replication, pg_rewind (issue 35 replaces them with Patroni).
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { connectOwner, ownerPool } from './ca-databases.js';
import { isRoot, pgBinDir, run } from './exec.js';
import { osUserIds } from './os-user.js';
import { sharedSettings } from './cluster-settings.js';
import { writePgbackrestConf } from './pgbackrest.js';
import { assertPortFree } from './ports.js';
import { pgDataDir, postmasterAlive, waitForPostmasterExit } from './postmaster.js';
import { installPgTlsFiles, libpqTlsEnv, libpqTlsParams, pgHbaWithTls, pgServerTls, setRolePasswords, writeInitdbPasswordFile } from './postgres-tls.js';

/** The slot and application name a site streams under as a standby; the primary's synchronous_standby_names waits for it. */
export function standbyName(site: SiteConfig): string {
  return `site_${site.id}`;
}

/** What a cluster is in the current topology: the primary (with the standby it waits for, if any) or a standby of a primary. */
export type ClusterRole = { readonly role: 'primary'; readonly syncStandby?: SiteConfig } | { readonly role: 'standby'; readonly primary: SiteConfig };

export { pgDataDir, postmasterAlive, sharedSettings, waitForPostmasterExit };

function pg(bin: string): string {
  return join(pgBinDir(), bin);
}

/** Settings we own, in a file included from postgresql.conf, so a re-run of `sites up` can change them. */
function clusterSettings(config: FleetConfig, site: SiteConfig, role: ClusterRole): string {
  const lines = [
    `# Written by fleetpki sites up; edits are overwritten. See infra/README.md.`,
    `port = ${site.pgPort}`,
    `listen_addresses = '${site.host}'`,
    ...sharedSettings(config, site),
    // RPO 0: a commit on the primary returns only once the standby has it. If the standby is down,
    // commits wait (no silent degradation; the services answer 503 STANDBY_UNAVAILABLE after
    // FLEETPKI_WRITE_WAIT_MS). Only `sites unprotect` (two people) clears it; the site agent applies it.
    `synchronous_standby_names = '${role.role === 'primary' && role.syncStandby ? `FIRST 1 (${standbyName(role.syncStandby)})` : ''}'`,
  ];
  if (role.role === 'standby') {
    const tls = pgServerTls(config) ? ` ${libpqTlsParams(site)}` : '';
    lines.push(`primary_conninfo = 'host=${role.primary.host} port=${role.primary.pgPort} user=${config.pgUser} application_name=${standbyName(site)}${tls}'`);
    lines.push(`primary_slot_name = '${standbyName(site)}'`);
  }
  return lines.join('\n') + '\n';
}

export function writeSettings(config: FleetConfig, site: SiteConfig, role: ClusterRole): void {
  const dataDir = pgDataDir(site);
  const tls = pgServerTls(config);
  if (tls) {
    installPgTlsFiles(config, site, tls);
    writeFileSync(join(dataDir, 'pg_hba.conf'), pgHbaWithTls(config));
    chownToPgUser(join(dataDir, 'pg_hba.conf'));
  }
  const conf = join(dataDir, 'postgresql.conf');
  const include = `include_if_exists = 'fleetpki.conf'`;
  const text = readFileSync(conf, 'utf8');
  if (!text.includes(include)) writeFileSync(conf, `${text}\n${include}\n`);
  // pg_basebackup -R writes primary_conninfo into postgresql.auto.conf, which would win over ours.
  writeFileSync(join(dataDir, 'postgresql.auto.conf'), '# managed by fleetpki: see fleetpki.conf\n');
  writeFileSync(join(dataDir, 'fleetpki.conf'), clusterSettings(config, site, role));
  // Never in the way of PostgreSQL itself (a promotion calls this): a broken backup configuration shows
  // as archiving failing (sites status, backup check), while the CA goes on issuing.
  try {
    writePgbackrestConf(config, site);
  } catch (err) {
    console.error(`site ${site.id}: pgBackRest's configuration not written, WAL archiving will fail: ${(err as Error).message}`);
  }
  chownToPgUser(join(dataDir, 'fleetpki.conf'), join(dataDir, 'postgresql.auto.conf'), conf);
}

function chownToPgUser(...paths: string[]): void {
  if (!isRoot) return;
  const { uid, gid } = osUserIds('postgres');
  for (const p of paths) chownSync(p, uid, gid);
}

/** A folder the postgres OS user owns, mode 0700 (a data directory, the server log's). */
export function prepareClusterDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownToPgUser(dir);
}

export async function isClusterRunning(site: SiteConfig): Promise<boolean> {
  return existsSync(join(pgDataDir(site), 'PG_VERSION')) && postmasterAlive(site);
}

/** Server log, outside the data directory so a base backup does not copy it to the other site. */
export function pgLogFile(site: SiteConfig): string {
  return join(site.dir, 'pg-log', 'postgresql.log');
}

export async function startCluster(site: SiteConfig): Promise<void> {
  const dataDir = pgDataDir(site);
  await assertPortFree(site.pgPort, `PostgreSQL of site ${site.id}`, `FLEETPKI_PG_PORT_${site.id.toUpperCase()}`, site.host);
  prepareClusterDir(join(site.dir, 'pg-log'));
  await run(pg('pg_ctl'), ['start', '-D', dataDir, '-l', pgLogFile(site), '-w', '-t', '60'], { asPgUser: true, netns: site.netns });
}

export async function stopCluster(site: SiteConfig, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!(await isClusterRunning(site))) return;
  await run(pg('pg_ctl'), ['stop', '-D', pgDataDir(site), '-m', mode, '-w', '-t', '60'], { asPgUser: true });
}

/**
 * Creates (first run: initdb) and starts the primary cluster and the fleetpki database. The first primary
 * is site A; after a failover the topology file names the other.
 */
export async function ensurePrimary(config: FleetConfig, site: SiteConfig, syncStandby: SiteConfig | undefined): Promise<'created' | 'started' | 'running'> {
  const dataDir = pgDataDir(site);
  let outcome: 'created' | 'started' | 'running' = 'running';
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    prepareClusterDir(dataDir);
    const tls = pgServerTls(config);
    // With TLS the owner has its password from the start: our pg_hba.conf has no trust line to set it over.
    if (tls) installPgTlsFiles(config, site, tls);
    const pwfile = tls ? writeInitdbPasswordFile(config, site) : undefined;
    const auth = pwfile ? ['--auth=scram-sha-256', `--pwfile=${pwfile}`] : ['--auth=trust'];
    try {
      await run(pg('initdb'), ['-D', dataDir, '-U', config.pgUser, ...auth, '-E', 'UTF8', '--locale=C', '--no-instructions'], { asPgUser: true });
    } finally {
      if (pwfile) rmSync(pwfile, { force: true });
    }
    if (site.netns) {
      // The sites in network namespaces reach each other (replication, pg_rewind, the services of the
      // other site) over the namespaces' private link; trust, as on loopback (production: scram, TLS).
      appendFileSync(join(dataDir, 'pg_hba.conf'), `host all all ${config.simulation.subnet} trust\nhost replication all ${config.simulation.subnet} trust\n`);
    }
    outcome = 'created';
  }
  writeSettings(config, site, syncStandby ? { role: 'primary', syncStandby } : { role: 'primary' });
  if (!(await isClusterRunning(site))) {
    await startCluster(site);
    if (outcome === 'running') outcome = 'started';
  } else await reloadCluster(site);
  await ensureCaDatabase(config, site);
  return outcome;
}

/** On a running primary: the owner's password (with TLS) and the CA's database, without waiting for a standby. */
export async function ensureCaDatabase(config: FleetConfig, site: SiteConfig): Promise<void> {
  const pool = ownerPool(config, site, 'postgres', { applicationName: 'fleetpki-sites', max: 1 });
  try {
    // Bootstrap statements must not wait for a standby that does not exist yet.
    const client = await connectOwner(config, site, pool, 'postgres');
    try {
      await client.query(`SET synchronous_commit = local`);
      if (pgServerTls(config)) await setRolePasswords(config, client);
      const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [config.pgDatabase]);
      if (db.rowCount === 0) await client.query(`CREATE DATABASE ${config.pgDatabase}`);
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
}

/** Creates `site` as a hot standby of `primary` by base backup (first run) and starts it. */
export async function ensureStandby(config: FleetConfig, site: SiteConfig, primary: SiteConfig): Promise<'created' | 'started' | 'running'> {
  const dataDir = pgDataDir(site);
  let outcome: 'created' | 'started' | 'running' = 'running';
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    await baseBackup(config, site, primary);
    outcome = 'created';
  }
  writeSettings(config, site, { role: 'standby', primary });
  if (!(await isClusterRunning(site))) {
    await startCluster(site);
    if (outcome === 'running') outcome = 'started';
  } else await reloadCluster(site);
  return outcome;
}

/** A fresh copy of `primary` into `site`'s (empty) data directory, with its replication slot. */
export async function baseBackup(config: FleetConfig, site: SiteConfig, primary: SiteConfig): Promise<void> {
  const pool = ownerPool(config, primary, 'postgres', { applicationName: 'fleetpki-sites', max: 1 });
  try {
    // A slot left from an earlier standby would hold WAL forever and make -C fail.
    await pool.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [standbyName(site)]);
  } finally {
    await pool.end();
  }
  const dataDir = pgDataDir(site);
  prepareClusterDir(dataDir);
  await run(
    pg('pg_basebackup'),
    ['-h', primary.host, '-p', String(primary.pgPort), '-U', config.pgUser, '-D', dataDir, '-X', 'stream', '-C', '-S', standbyName(site), '-R', '--checkpoint=fast'],
    { asPgUser: true, timeoutMs: 600_000, env: libpqTlsEnv(config, site) },
  );
}

/** Reloads a running cluster's configuration files (after writeSettings). */
export async function reloadCluster(site: SiteConfig): Promise<void> {
  await run(pg('pg_ctl'), ['reload', '-D', pgDataDir(site)], { asPgUser: true });
}

/** Promotes a hot standby to primary and waits until it accepts writes. */
export async function promoteCluster(site: SiteConfig): Promise<void> {
  await run(pg('pg_ctl'), ['promote', '-D', pgDataDir(site), '-w', '-t', '60'], { asPgUser: true });
}

/**
 * Makes a former primary (stopped, cleanly or not) the hot standby of the new one: pg_rewind brings its
 * data directory back to the point where the timelines split (wal_log_hints is on for this), so only the
 * difference is copied; if rewinding is impossible, a fresh base backup. Then the slot, standby.signal,
 * settings, start.
 */
export async function rebuildAsStandby(config: FleetConfig, site: SiteConfig, primary: SiteConfig, log: (line: string) => void = () => undefined): Promise<'rewound' | 'copied'> {
  await stopCluster(site, 'immediate').catch(() => undefined);
  await waitForPostmasterExit(site, log);
  const dataDir = pgDataDir(site);
  const pool = ownerPool(config, primary, 'postgres', { applicationName: 'fleetpki-sites', max: 1 });
  try {
    await pool.query(`SELECT pg_create_physical_replication_slot($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, [standbyName(site)]);
  } finally {
    await pool.end();
  }
  const asStandby = async () => {
    writeFileSync(join(dataDir, 'standby.signal'), '');
    chownToPgUser(join(dataDir, 'standby.signal'));
    writeSettings(config, site, { role: 'standby', primary });
    await startCluster(site);
    await waitUntilStreaming(config, site, primary);
  };
  try {
    rmSync(join(dataDir, 'standby.signal'), { force: true });
    // pg_rewind wants a cleanly shut down target. A killed primary is not: let it finish crash recovery
    // alone (no listener, waiting on no standby), then stop it cleanly. pg_rewind's own single-user
    // recovery failed on these machines.
    const state = await run(pg('pg_controldata'), ['-D', dataDir], { asPgUser: true });
    if (!/Database cluster state:\s+shut down/.test(state)) {
      await run(pg('pg_ctl'), ['start', '-D', dataDir, '-l', pgLogFile(site), '-w', '-t', '120', '-o', "-c listen_addresses='' -c unix_socket_directories=/tmp -c synchronous_standby_names=''"], { asPgUser: true, timeoutMs: 180_000 });
      await run(pg('pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], { asPgUser: true });
    }
    // A just-promoted source still names its old timeline in its control file until its first
    // checkpoint on the new one, and pg_rewind then finds "no rewind required": checkpoint it first.
    await withSourceCheckpoint(config, primary);
    const rewound = await run(pg('pg_rewind'), ['-D', dataDir, '--source-server', `host=${primary.host} port=${primary.pgPort} user=${config.pgUser} dbname=postgres`, '--progress'], { asPgUser: true, timeoutMs: 600_000, stderrToo: true, env: libpqTlsEnv(config, site) });
    log(`pg_rewind: ${rewound.trim().split('\n').filter(Boolean).slice(-4).join(' | ')}`);
    await asStandby();
    return 'rewound';
  } catch (err) {
    // Rewinding needs WAL back to the split on both sides; when anything is missing, copy instead.
    const lines = (err as Error).message.split('\n').filter(Boolean);
    log(`rewinding site ${site.id} did not work (${lines[lines.length - 1]!.slice(-300)}); taking a fresh base backup`);
    await stopCluster(site, 'immediate').catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    await baseBackup(config, site, primary);
    await asStandby();
    return 'copied';
  }
}

/**
 * A rebuilt standby counts only once it has replayed everything the primary had when we started
 * waiting: a rewind that left it on a timeline it cannot follow still connects (and even shows as
 * streaming for a moment) but never replays past the fork.
 */
export async function waitUntilStreaming(config: FleetConfig, site: SiteConfig, primary: SiteConfig, timeoutMs = 20_000): Promise<void> {
  const pool = ownerPool(config, primary, 'postgres', { applicationName: 'fleetpki-sites', max: 1 });
  try {
    const { rows: at } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await pool.query<{ state: string; caught_up: boolean }>(
        'SELECT state, coalesce(replay_lsn >= $2::pg_lsn, false) AS caught_up FROM pg_stat_replication WHERE application_name = $1',
        [standbyName(site), at[0]!.lsn],
      );
      if (rows[0]?.state === 'streaming' && rows[0].caught_up) return;
      if (Date.now() > deadline) throw new FleetError('SITES_STANDBY_NOT_STREAMING', `site ${site.id} started but has not replayed ${primary.id}'s WAL up to ${at[0]!.lsn} within ${timeoutMs / 1000} s (${rows[0]?.state ?? 'not connected'})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await pool.end();
  }
}

async function withSourceCheckpoint(config: FleetConfig, primary: SiteConfig): Promise<void> {
  const pool = ownerPool(config, primary, 'postgres', { applicationName: 'fleetpki-sites', max: 1 });
  try {
    await pool.query('CHECKPOINT');
  } finally {
    await pool.end();
  }
}
