// How a client secures its link to PostgreSQL (issue 34): TLS checked against the deployment's CA
// bundle and the role's scram-sha-256 password from its secret file. Off unless the file names the
// PostgreSQL pair and the CA bundle; when on, there is no plaintext fallback.
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { DATABASE_CLIENTS, DATABASE_ROLES, FleetError, isUntrustedCertificateCode, type DatabaseClient, type FleetConfig } from '@fleetpki/core';

/** Who connects: the owner (config.pgUser: migrations, the sites' bootstrap) or a service's role. */
export type PgLinkRole = 'owner' | DatabaseClient;

export interface PgLinkSecurity {
  /** The PEM bundle the server's certificate must chain to (tls.caBundle). */
  readonly caBundle: string;
  /** The role's password file (secrets.postgres.<role>); read at each connection, so a rotated file is picked up. */
  readonly passwordFile: string;
  /** The database role name, for errors. */
  readonly roleName: string;
}

/**
 * The link's security for `role`, or undefined when TLS to PostgreSQL is off. The same condition turns
 * the server's TLS on (packages/sites postgres-tls.ts), so a client never offers plaintext to a server
 * that only takes TLS, nor TLS to one that has none.
 */
export function pgLinkSecurity(config: FleetConfig, role: PgLinkRole): PgLinkSecurity | undefined {
  const caBundle = config.tls.caBundle;
  if (!caBundle || !config.tls.parts.postgres) return undefined;
  const passwordFile = config.secrets.postgres[role];
  const roleName = role === 'owner' ? config.pgUser : DATABASE_ROLES[role];
  if (!passwordFile) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: tls.postgres is set, so PostgreSQL takes only scram-sha-256 over TLS, but secrets.postgres.${role} (the password of role ${roleName}) is not`);
  }
  return { caBundle, passwordFile, roleName };
}

/** The password, without the trailing newline an editor or `echo` leaves. */
export function readPgPassword(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/**
 * node-postgres options for a secured link: verify the chain against the bundle only (not the system
 * store: the internal CA is the only one that may vouch for a database) and the host name against the
 * certificate's subjectAltName, as libpq's sslmode=verify-full does.
 */
export function pgClientSecurityOptions(security: PgLinkSecurity, host: string): { ssl: object; password: () => string } {
  const ca = readFileSync(security.caBundle);
  return {
    ssl: {
      ca,
      rejectUnauthorized: true,
      // Checked here against the host dialled, whatever the driver version does with SNI for an IP host.
      checkServerIdentity: (_servername: string, cert: PeerCertificate) => checkServerIdentity(host, cert),
    },
    password: () => readPgPassword(security.passwordFile),
  };
}

/**
 * What pg.Pool or pg.Client connect with: the URL as is on a plain link; on a secured one its endpoint
 * only, with the TLS options and the password function (a connectionString's parsed fields would
 * override both).
 */
export function pgConnectionConfig(databaseUrl: string, security: PgLinkSecurity | undefined): object {
  if (!security) return { connectionString: databaseUrl };
  const u = new URL(databaseUrl);
  const endpoint = { host: u.hostname, port: Number(u.port || 5432), user: decodeURIComponent(u.username), database: decodeURIComponent(u.pathname.replace(/^\//, '')) };
  return { ...endpoint, ...pgClientSecurityOptions(security, u.hostname) };
}

/** The link's security for whichever role a URL connects as (the owner or a service's), by its user name. */
export function pgLinkSecurityForUrl(config: FleetConfig, databaseUrl: string): PgLinkSecurity | undefined {
  const user = decodeURIComponent(new URL(databaseUrl).username);
  const client = DATABASE_CLIENTS.find((c) => DATABASE_ROLES[c] === user);
  if (!client && user !== config.pgUser) {
    if (!config.tls.caBundle || !config.tls.parts.postgres) return undefined;
    throw new FleetError('CONFIG_INVALID', `invalid configuration: tls.postgres is set, but role ${user} is neither the owner nor a service's, so no secrets.postgres entry gives its password`);
  }
  return pgLinkSecurity(config, client ?? 'owner');
}

/**
 * A failed connection on a secured link as an operator can act on it: a refused password (SQLSTATE
 * 28P01, or 28000 when pg_hba.conf has no line for the role), a server certificate the bundle does not
 * vouch for, or anything else (unreachable). Names role, host:port and the CA file; never the password.
 */
export function describePgLinkError(databaseUrl: string, err: unknown, security: PgLinkSecurity): FleetError {
  const url = new URL(databaseUrl);
  const where = `${url.hostname}:${url.port || '5432'}`;
  const e = err as { code?: string; message?: string };
  if (e.code === '28P01' || e.code === '28000') {
    return new FleetError('DB_AUTH_FAILED', `PostgreSQL at ${where} refused role ${security.roleName}: ${e.message ?? ''} (check the password in ${security.passwordFile} against the role's on the server)`, { httpStatus: 503, cause: err });
  }
  if (isUntrustedCertificateCode(e.code)) {
    return new FleetError('DB_TLS_UNTRUSTED', `PostgreSQL at ${where} presented a certificate that ${security.caBundle} does not vouch for (${e.code}: ${e.message ?? ''}); refusing to send role ${security.roleName}'s password`, { httpStatus: 503, cause: err });
  }
  if (/does not support SSL/i.test(e.message ?? '')) {
    return new FleetError('DB_TLS_UNTRUSTED', `PostgreSQL at ${where} does not offer TLS, and tls.postgres is set; refusing to connect as ${security.roleName} in plaintext`, { httpStatus: 503, cause: err });
  }
  return new FleetError('STORE_UNAVAILABLE', `cannot reach PostgreSQL at ${where}${url.pathname} as ${security.roleName} over TLS: ${e.message ?? String(err)}`, { httpStatus: 503, cause: err });
}
