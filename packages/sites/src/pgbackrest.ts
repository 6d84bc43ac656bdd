// pgBackRest as the clusters use it: one configuration file per site (its data directory, the shared
// repository, the passphrase), and the one way we run the tool. The repository is off the database
// hosts (backup.repository); every site archives to it and backs up into it under one stanza, so the
// archive goes on across a failover (the new primary's timeline is added beside the old one).
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { isRoot, run } from './exec.js';
import { osUserIds } from './os-user.js';
import { pgDataDir } from './postmaster.js';
import { libpqTlsEnv } from './postgres-tls.js';

/** The Debian package's binary; FLEETPKI_PGBACKREST names another. */
export function pgbackrestBin(): string {
  return process.env.FLEETPKI_PGBACKREST ?? '/usr/bin/pgbackrest';
}

/** The site's pgBackRest folder: its configuration file, log, lock and spool (outside the data directory, so a base backup does not carry it). */
export function pgbackrestDir(site: SiteConfig): string {
  return join(site.dir, 'pgbackrest');
}

export function pgbackrestConfFile(site: SiteConfig): string {
  return join(pgbackrestDir(site), 'pgbackrest.conf');
}

/** archive_command of a site's cluster: runs on whichever site is primary (archive_mode = on: a standby archives nothing). */
export function archiveCommand(site: SiteConfig, stanza: string): string {
  return `${checkPath('FLEETPKI_PGBACKREST', pgbackrestBin())} --config=${checkPath(`sites.${site.id}.dir`, pgbackrestConfFile(site))} --stanza=${stanza} archive-push %p`;
}

function ownByPostgres(path: string): void {
  if (!isRoot) return;
  const { uid, gid } = osUserIds('postgres');
  chownSync(path, uid, gid);
}

function privateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
  ownByPostgres(path);
}

/**
 * The paths pgBackRest's file and archive_command name: plain characters only. archive_command is a
 * shell command line and the file is line-based, so a space, quote, `$`, `;` or newline in a configured
 * path would break archiving or say more than it should.
 */
function checkPath(key: string, path: string): string {
  if (!/^\/[A-Za-z0-9/._-]*$/.test(path)) throw new FleetError('CONFIG_INVALID', `invalid configuration: ${key} "${path}" must be an absolute path of letters, digits and / . _ - only (pgBackRest's configuration and archive_command name it)`);
  return path;
}

/**
 * The repository's passphrase. The simulation's default file is made here on first use; a configured
 * one (secrets.backup) must exist: a new passphrase would make every existing backup unreadable.
 */
export function readCipherPass(config: FleetConfig): string {
  const file = config.backup.cipherPassFile;
  if (!existsSync(file)) {
    if (config.secrets.backup !== undefined) throw new FleetError('BACKUP_PASSPHRASE_MISSING', `secrets.backup names ${file}, which does not exist: the backup repository's passphrase is needed to write and read any backup (docs/backup.md)`);
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  }
  const pass = readFileSync(file, 'utf8').trim();
  if (!/^[\x21-\x7e]+$/.test(pass)) throw new FleetError('BACKUP_PASSPHRASE_INVALID', `${file}: the backup repository's passphrase must be one line of printable characters without spaces`);
  if (pass.length < 20) throw new FleetError('BACKUP_PASSPHRASE_WEAK', `${file}: the backup repository's passphrase must have at least 20 characters`);
  return pass;
}

/**
 * Writes the site's configuration file (0600, the postgres OS user's: it holds the passphrase, and
 * archive_command reads it inside the postmaster, where no environment is ours to set).
 */
export function writePgbackrestConf(config: FleetConfig, site: SiteConfig): string {
  const dir = checkPath(`sites.${site.id}.dir`, pgbackrestDir(site));
  checkPath('backup.repository', config.backup.repository);
  privateDir(dir);
  for (const sub of ['log', 'lock', 'spool']) privateDir(join(dir, sub));
  // The repository is made here when it is missing (the simulation's); an existing one (a share, a
  // mount) is the operator's, its owner and mode left as they set them.
  if (!existsSync(config.backup.repository)) privateDir(config.backup.repository);
  const text = [
    '# Written by fleetpki sites up; edits are overwritten (docs/backup.md).',
    '[global]',
    `repo1-path=${config.backup.repository}`,
    'repo1-cipher-type=aes-256-cbc',
    `repo1-cipher-pass=${readCipherPass(config)}`,
    `repo1-retention-full=${config.backup.retention.full}`,
    `repo1-retention-diff=${config.backup.retention.differential}`,
    // lz4: the suite and the benchmarks write WAL fast on two cores; gzip's CPU would be felt there.
    'compress-type=lz4',
    'start-fast=y',
    `log-path=${join(dir, 'log')}`,
    `lock-path=${join(dir, 'lock')}`,
    `spool-path=${join(dir, 'spool')}`,
    'log-level-console=warn',
    'log-level-file=info',
    '',
    `[${config.backup.stanza}]`,
    `pg1-path=${pgDataDir(site)}`,
    `pg1-port=${site.pgPort}`,
    `pg1-user=${config.pgUser}`,
    '',
  ].join('\n');
  const file = pgbackrestConfFile(site);
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
  ownByPostgres(file);
  return file;
}

export interface PgbackrestRun {
  readonly timeoutMs?: number;
  /** Only stdout (JSON output); by default stderr is kept too, where pgBackRest says what went wrong. */
  readonly stdoutOnly?: boolean;
  /** Extra options (--type=full, --target=...). */
  readonly args?: readonly string[];
  /** What follows the command itself (archive-push's WAL file). */
  readonly operands?: readonly string[];
}

/**
 * Runs `pgbackrest <command>` for `site` as the postgres OS user. The clusters have no Unix socket, and
 * pgBackRest has no option for a TCP host: it leaves the host to libpq, so PGHOST (and, with TLS,
 * libpq's TLS variables and the owner's passfile) carry it.
 */
export function pgbackrest(config: FleetConfig, site: SiteConfig, command: string, options: PgbackrestRun = {}): Promise<string> {
  const env = { PGHOST: site.pgHost, ...libpqTlsEnv(config, site) };
  return run(pgbackrestBin(), [`--config=${pgbackrestConfFile(site)}`, `--stanza=${config.backup.stanza}`, ...(options.args ?? []), command, ...(options.operands ?? [])], {
    asPgUser: true,
    env,
    netns: site.netns,
    timeoutMs: options.timeoutMs ?? 600_000,
    stderrToo: !options.stdoutOnly,
  });
}
