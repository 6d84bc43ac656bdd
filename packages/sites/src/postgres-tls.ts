// The local clusters' side of issue 34's PostgreSQL link: TLS with the deployment's pair, scram-sha-256
// only, pg_hba.conf with no trust line, every role's password from its secret file. Off unless the file
// names tls.postgres and tls.caBundle (the same condition as the clients', pgLinkSecurity).
import { createHmac, createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATABASE_CLIENTS, DATABASE_ROLES, FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { pgLinkSecurity, readPgPassword, type PoolClient } from '@fleetpki/store';
import { isRoot } from './exec.js';
import { osUserIds, writeFileForPgUser } from './os-user.js';

export interface PgServerTls {
  readonly cert: string;
  readonly key: string;
  readonly caBundle: string;
}

export function pgServerTls(config: FleetConfig): PgServerTls | undefined {
  const pair = config.tls.parts.postgres;
  const caBundle = config.tls.caBundle;
  return pair && caBundle ? { ...pair, caBundle } : undefined;
}

/** Outside the data directory: a base backup or pg_rewind must not carry one site's key or passfile to the other. */
export function pgTlsDir(site: SiteConfig): string {
  return join(site.dir, 'pg-tls');
}

/**
 * Writes `path` readable by the postgres OS user only (PostgreSQL refuses a key others can read), never
 * through a link that user planted in its folder (writeFileForPgUser).
 */
function writePrivate(path: string, from: { file: string } | { text: string }): void {
  writeFileForPgUser(path, 'file' in from ? readFileSync(from.file) : from.text, 'postgres', isRoot);
}

/**
 * Copies the server pair and the CA bundle where the postgres OS user can read them (the configured
 * files may be root's), and the owner's password as a libpq passfile for replication, pg_basebackup and
 * pg_rewind (libpq reads passwords from a file, never from the command line or the settings file).
 */
export function installPgTlsFiles(config: FleetConfig, site: SiteConfig, tls: PgServerTls): void {
  const dir = pgTlsDir(site);
  // The site's folder first, with the default mode: a recursive mkdir would make it 0700 too, and the postgres user must traverse it.
  mkdirSync(site.dir, { recursive: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (isRoot) {
    const { uid, gid } = osUserIds('postgres');
    chownSync(dir, uid, gid);
  }
  writePrivate(join(dir, 'server.pem'), { file: tls.cert });
  writePrivate(join(dir, 'server.key'), { file: tls.key });
  writePrivate(join(dir, 'ca.pem'), { file: tls.caBundle });
  const owner = pgLinkSecurity(config, 'owner')!;
  const escape = (v: string) => v.replace(/[\\:]/g, (c) => `\\${c}`);
  writePrivate(join(dir, 'pgpass'), { text: `*:*:*:${escape(owner.roleName)}:${escape(readPgPassword(owner.passwordFile))}\n` });
}

/** The owner's password for initdb --pwfile (removed by the caller once the cluster exists). */
export function writeInitdbPasswordFile(config: FleetConfig, site: SiteConfig): string {
  const path = join(pgTlsDir(site), 'initdb.pw');
  writePrivate(path, { text: `${readPgPassword(pgLinkSecurity(config, 'owner')!.passwordFile)}\n` });
  return path;
}

/** libpq's verify-full against the copied CA bundle, the owner's password from the copied passfile. */
export function libpqTlsParams(site: SiteConfig): string {
  return `sslmode=verify-full sslrootcert=${join(pgTlsDir(site), 'ca.pem')} passfile=${join(pgTlsDir(site), 'pgpass')}`;
}

/** The same for pg_basebackup and pg_rewind, which take libpq's environment. */
export function libpqTlsEnv(config: FleetConfig, site: SiteConfig): NodeJS.ProcessEnv {
  const tls = pgServerTls(config);
  if (!tls) return {};
  installPgTlsFiles(config, site, tls);
  return { PGSSLMODE: 'verify-full', PGSSLROOTCERT: join(pgTlsDir(site), 'ca.pem'), PGPASSFILE: join(pgTlsDir(site), 'pgpass') };
}

/** Settings lines for fleetpki.conf: TLS on with the copied pair, new passwords stored as SCRAM verifiers. */
export function pgTlsSettings(site: SiteConfig): string[] {
  const dir = pgTlsDir(site);
  return [
    `ssl = on`,
    `ssl_cert_file = '${join(dir, 'server.pem')}'`,
    `ssl_key_file = '${join(dir, 'server.key')}'`,
    `ssl_min_protocol_version = 'TLSv1.2'`,
    `password_encryption = 'scram-sha-256'`,
  ];
}

/**
 * pg_hba.conf when TLS is on, replacing initdb's (whose host lines are trust): TLS and scram-sha-256 for
 * the owner, the service roles and replication, and an explicit reject for anything in plaintext, so a
 * refused client is told why. No `local` line: the clusters have no Unix socket
 * (unix_socket_directories = '', the state folder's path can exceed the socket path limit), so the
 * superuser that runs migrations authenticates as every other client does.
 */
export function pgHbaWithTls(config: FleetConfig, patroniRoles?: { readonly replication: string; readonly rewind: string }): string {
  return `${pgHbaLinesWithTls(config, patroniRoles).join('\n')}\n`;
}

/**
 * The same lines one by one (Patroni writes pg_hba.conf from a list). Under Patroni, replication is its
 * replication role's and pg_rewind connects as its rewind role (an ordinary connection to `postgres`).
 */
export function pgHbaLinesWithTls(config: FleetConfig, patroniRoles?: { readonly replication: string; readonly rewind: string }): string[] {
  const services = DATABASE_CLIENTS.map((c) => DATABASE_ROLES[c]).join(',');
  return [
    `# Written by fleetpki ${patroniRoles ? "(Patroni's postgresql.pg_hba)" : 'sites up'} (tls.postgres is set); edits are overwritten.`,
    '# TYPE    DATABASE     USER                 ADDRESS  METHOD',
    `hostssl   all          ${config.pgUser}     all      scram-sha-256`,
    `hostssl   all          ${services}          all      scram-sha-256`,
    // pg_rewind's role reads files of the data directory (Patroni grants it pg_read_binary_file in
    // `postgres`): it logs in there only, never to a CA database.
    ...(patroniRoles ? [`hostssl   postgres     ${patroniRoles.rewind}     all      scram-sha-256`] : []),
    `hostssl   replication  ${patroniRoles ? patroniRoles.replication : config.pgUser}     all      scram-sha-256`,
    'hostnossl all          all                  all      reject',
    'hostnossl replication  all                  all      reject',
  ];
}

/**
 * A SCRAM-SHA-256 verifier (RFC 7677, PostgreSQL's stored format), computed here so ALTER ROLE never
 * carries the password itself: it reaches neither the server's log nor pg_stat_statements.
 */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  // PostgreSQL applies SASLprep to the password; printable ASCII is its identity, so only that is taken.
  if (!/^[\x20-\x7e]+$/.test(password)) throw new FleetError('CONFIG_INVALID', 'invalid configuration: a PostgreSQL password file must hold printable ASCII only');
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/**
 * Gives the owner and every service role its password from its secret file. The service roles are
 * created here if migrations have not run yet, with 0016_service_roles.sql's attributes (its CREATE is
 * IF NOT EXISTS), so a service can log in as soon as its grants exist.
 */
export async function setRolePasswords(config: FleetConfig, client: PoolClient): Promise<void> {
  const roles: Array<['owner' | (typeof DATABASE_CLIENTS)[number], string]> = [['owner', config.pgUser], ...DATABASE_CLIENTS.map((c) => [c, DATABASE_ROLES[c]] as [typeof c, string])];
  for (const [role, name] of roles) {
    const security = pgLinkSecurity(config, role)!;
    if (role !== 'owner') {
      await client.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${name}') THEN CREATE ROLE ${name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION; END IF; END $$`);
    }
    // The verifier's alphabet (base64, digits, $ : =) needs no quoting; utility statements take no parameters.
    await client.query(`ALTER ROLE ${name} PASSWORD '${scramVerifier(readPgPassword(security.passwordFile))}'`);
  }
}
