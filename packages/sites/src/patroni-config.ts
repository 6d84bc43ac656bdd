// Patroni's configuration for a site (database.ha patroni, issue 35): the patroni.yml `sites up` writes,
// with the cluster-wide settings Patroni puts into etcd once, the TLS material it reads when the links are
// secured, and the passwords both sites' Patroni share. patroni.ts starts, stops and asks Patroni.
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { PATRONI_NAMESPACE, PATRONI_SCOPE, patroniIdentity, readEtcdPassword } from '@fleetpki/consensus';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { pgLinkSecurity, readPgPassword } from '@fleetpki/store';
import { isRoot, pgBinDir, PG_OS_USER } from './exec.js';
import { writeFileForPgUser } from './os-user.js';
import { sharedSettings } from './cluster-settings.js';
import { pgDataDir, prepareClusterDir, standbyName } from './postgres-cluster.js';
import { installPgTlsFiles, pgHbaLinesWithTls, pgServerTls, pgTlsDir } from './postgres-tls.js';

/**
 * Patroni's timing (its dynamic configuration, in etcd). ttl is the leader key's lease: a primary whose
 * Patroni stops renewing it is failed over once it runs out, and the services' CA-site view (CaSiteReader)
 * ends with it. Patroni needs loop_wait + 2 * retry_timeout <= ttl, so that a primary that cannot reach
 * etcd demotes itself before its key can run out. 10 s instead of Patroni's 30: the CA's RTO.
 */
export const PATRONI_TIMING = { ttl: 10, loopWait: 1, retryTimeout: 4 } as const;

/** The PostgreSQL roles Patroni creates at bootstrap for streaming and for pg_rewind (not the owner: issue 35). */
export const REPLICATION_ROLE = 'fleetpki_replication';
export const REWIND_ROLE = 'fleetpki_rewind';

export function patroniDir(site: SiteConfig): string {
  return join(site.dir, 'patroni');
}

export function patroniConfigFile(site: SiteConfig): string {
  return join(patroniDir(site), 'patroni.yml');
}

/**
 * A password of Patroni's (the replication and rewind roles', the REST API's), made once and kept in
 * <stateDir>/patroni-secrets (0600): both sites' Patroni must know the same ones.
 */
export function patroniSecret(config: FleetConfig, name: 'replication' | 'rewind' | 'rest' | 'superuser'): string {
  const dir = join(config.stateDir, 'patroni-secrets');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  return readFileSync(file, 'utf8').trim();
}

/** `name = value` as postgresql.conf writes it, as Patroni's parameters take it (quotes off). */
function parameters(lines: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new FleetError('SITES_SETTING_INVALID', `not a PostgreSQL setting: ${line}`);
    out[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/**
 * Where the site's Patroni REST API answers: over HTTPS with the site's PostgreSQL pair when tls.postgres
 * is set (the API is the database host's, and the other site's Patroni calls it in failsafe mode).
 */
export function patroniUrl(config: FleetConfig, site: SiteConfig): string {
  return `${pgServerTls(config) ? 'https' : 'http'}://${site.patroniHost}:${site.patroniPort}`;
}

/**
 * Copies what Patroni reads with TLS on where the postgres OS user can read it (the configured files may
 * be root's): the PostgreSQL pair and the CA bundle (installPgTlsFiles, pg-tls/), and etcd's client pair.
 */
export function installPatroniTlsFiles(config: FleetConfig, site: SiteConfig): void {
  const tls = pgServerTls(config);
  if (tls) installPgTlsFiles(config, site, tls);
  const client = config.tls.parts.etcdClient;
  if (etcdOverTls(config) && client) {
    const dir = patroniDir(site);
    prepareClusterDir(dir);
    // The folder is the postgres user's: never through a link planted there (writeFileForPgUser).
    for (const [from, name] of [[client.cert, 'etcd-client.pem'], [client.key, 'etcd-client.key'], [config.tls.caBundle!, 'etcd-ca.pem']] as const) writeFileForPgUser(join(dir, name), readFileSync(from), PG_OS_USER, isRoot);
  }
}

function etcdOverTls(config: FleetConfig): boolean {
  return config.consensus.endpoints.some((u) => u.startsWith('https:'));
}

/** Patroni's etcd3 section: over TLS (tls.etcdClient's pair, tls.caBundle) when the endpoints are https. */
function etcdSection(config: FleetConfig, site: SiteConfig): Record<string, unknown> {
  const hosts = config.consensus.endpoints.map((u) => new URL(u).host);
  const login = { username: patroniIdentity(site.id), password: readEtcdPassword(config, patroniIdentity(site.id)) };
  if (!etcdOverTls(config)) return { hosts, protocol: 'http', ...login };
  const client = config.tls.parts.etcdClient;
  if (!client || !config.tls.caBundle) throw new FleetError('CONFIG_INVALID', 'invalid configuration: etcd over https needs tls.etcdClient and tls.caBundle for Patroni too');
  // Patroni reaches etcd v3 through its JSON gateway, which answers every call with HTTP 400 when the
  // client certificate has a common name: said here, not as "waiting on etcd" in Patroni's log for ever.
  let subject: string;
  try {
    subject = new X509Certificate(readFileSync(client.cert)).subject;
  } catch (err) {
    throw new FleetError('SITES_PATRONI_ETCD_CLIENT', `tls.etcdClient.cert (${client.cert}) cannot be read as a PEM certificate: ${(err as Error).message}`);
  }
  if (/^CN=/m.test(subject)) throw new FleetError('SITES_PATRONI_ETCD_CLIENT', `tls.etcdClient.cert (${client.cert}) has a common name (${subject.replace(/\n/g, ', ')}): etcd's JSON gateway, which Patroni uses, refuses such a client certificate (HTTP 400); issue it again with \`fleetpki tls internal --part etcdClient\` (no common name)`);
  const dir = patroniDir(site);
  return { hosts, protocol: 'https', cacert: join(dir, 'etcd-ca.pem'), cert: join(dir, 'etcd-client.pem'), key: join(dir, 'etcd-client.key'), ...login };
}

/**
 * How Patroni's PostgreSQL connections (its own as superuser, a replica's streaming, pg_rewind) log in:
 * with TLS on, over TLS checked against the bundle (verify-full) with scram passwords, the superuser's
 * being the owner's own secret (the services, the CLI and the agent log in as the owner with it).
 */
function authentication(config: FleetConfig, site: SiteConfig): Record<string, unknown> {
  const tls = pgServerTls(config);
  const ssl = tls ? { sslmode: 'verify-full', sslrootcert: join(pgTlsDir(site), 'ca.pem') } : {};
  const superuserPassword = tls ? readPgPassword(pgLinkSecurity(config, 'owner')!.passwordFile) : patroniSecret(config, 'superuser');
  return {
    superuser: { username: config.pgUser, password: superuserPassword, ...ssl },
    replication: { username: REPLICATION_ROLE, password: patroniSecret(config, 'replication'), ...ssl },
    rewind: { username: REWIND_ROLE, password: patroniSecret(config, 'rewind'), ...ssl },
  };
}

/** pg_hba: with TLS, scram over TLS only (pgHbaLinesWithTls); without, the simulation's loopback trust. */
function hbaLines(config: FleetConfig, site: SiteConfig): string[] {
  if (pgServerTls(config)) return pgHbaLinesWithTls(config, { replication: REPLICATION_ROLE, rewind: REWIND_ROLE }).filter((l) => !l.startsWith('#'));
  // In network namespaces the other site and the services reach it over the namespaces' private link.
  return [site.host, ...(site.netns ? [config.simulation.subnet] : [])].flatMap((from) => [`host all all ${from.includes('/') ? from : `${from}/32`} trust`, `host replication all ${from.includes('/') ? from : `${from}/32`} trust`]);
}

/**
 * The site's Patroni configuration (JSON, which is YAML). Cluster-wide settings go to bootstrap.dcs, which
 * Patroni writes into etcd once, when the first site initialises the cluster; afterwards `patronictl
 * edit-config` or the REST API's PATCH /config change them, not this file.
 */
export function patroniDocument(config: FleetConfig, site: SiteConfig): Record<string, unknown> {
  const tls = pgServerTls(config);
  // Half the links secured would leave the REST API's password or PostgreSQL's trust lines in plaintext.
  if (Boolean(tls) !== etcdOverTls(config)) throw new FleetError('SITES_PATRONI_TLS_PARTIAL', `database.ha patroni takes TLS on both of its links or on neither: ${tls ? 'tls.postgres is set but etcd is reached over http' : 'etcd is reached over https but tls.postgres (with tls.caBundle) is not set'}`);
  if (tls) checkRestApiName(site, tls.cert);
  const shared = parameters(sharedSettings(config, site));
  const restPassword = patroniSecret(config, 'rest');
  const tlsDir = pgTlsDir(site);
  return {
    scope: PATRONI_SCOPE,
    namespace: `${config.consensus.prefix}${PATRONI_NAMESPACE}`.replace(/\/$/, ''),
    // The member's name is the name it streams under as a standby (synchronous_standby_names names it).
    name: standbyName(site),
    log: { level: 'INFO', format: '%(asctime)s %(levelname)s: %(message)s' },
    restapi: {
      listen: `${site.patroniHost}:${site.patroniPort}`,
      connect_address: `${site.patroniHost}:${site.patroniPort}`,
      // Switchover, restart and reinitialize need it; health checks (GET) do not.
      authentication: { username: 'fleetpki', password: restPassword },
      // With TLS on, HTTPS with the site's PostgreSQL pair; the other site's Patroni (failsafe) and the
      // agent check it against the bundle. Clients are not asked for certificates: writes need the password.
      ...(tls ? { certfile: join(tlsDir, 'server.pem'), keyfile: join(tlsDir, 'server.key'), cafile: join(tlsDir, 'ca.pem') } : {}),
    },
    etcd3: etcdSection(config, site),
    bootstrap: {
      dcs: {
        ttl: PATRONI_TIMING.ttl,
        loop_wait: PATRONI_TIMING.loopWait,
        retry_timeout: PATRONI_TIMING.retryTimeout,
        // RPO 0: a commit returns only once the other site has it; strict: with the standby gone, commits
        // wait (the services answer 503 STANDBY_UNAVAILABLE after writeWaitMs) rather than go on alone.
        synchronous_mode: true,
        synchronous_mode_strict: true,
        // etcd lost while both sites still see each other: the primary keeps going (Patroni 3's failsafe).
        failsafe_mode: true,
        // Not maximum_lag_on_failover 0: measured against the old primary's last WAL position, a sync standby
        // under write load is always "behind" by what was in flight, and would never be promoted. While
        // asynchronous (`sites unprotect`) Patroni is paused instead, and the agent refuses a switchover.
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          // Cluster-wide (Patroni checks them equal on every member); the rest of sharedSettings are local.
          parameters: {
            max_connections: shared.max_connections,
            max_wal_senders: shared.max_wal_senders,
            max_replication_slots: shared.max_replication_slots,
            wal_level: shared.wal_level,
            wal_log_hints: shared.wal_log_hints,
            wal_keep_size: shared.wal_keep_size,
            hot_standby: shared.hot_standby,
            track_commit_timestamp: shared.track_commit_timestamp,
          },
        },
      },
      // With TLS the superuser has its password from initdb on (Patroni passes it in a pwfile).
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }, { auth: tls ? 'scram-sha-256' : 'trust' }],
    },
    postgresql: {
      listen: `${site.host}:${site.pgPort}`,
      connect_address: `${site.host}:${site.pgPort}`,
      data_dir: pgDataDir(site),
      bin_dir: pgBinDir(),
      pgpass: join(patroniDir(site), 'pgpass'),
      authentication: authentication(config, site),
      parameters: shared,
      pg_hba: hbaLines(config, site),
    },
  };
}

/**
 * The REST API serves the site's PostgreSQL pair: it must name the host the API is reached at, or the
 * agents and the other site's Patroni (which checks names too) would take the API for down.
 */
function checkRestApiName(site: SiteConfig, certFile: string): void {
  const cert = new X509Certificate(readFileSync(certFile));
  const host = site.patroniHost;
  const named = isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
  if (!named) throw new FleetError('SITES_PATRONI_TLS_NAME', `site ${site.id}'s Patroni REST API is reached at ${host}, which tls.postgres's certificate (${certFile}) does not name (${cert.subjectAltName ?? 'no subjectAltName'}); set sites.${site.id}.patroni.host to a name it has, or issue the pair for that host too`);
}

/** Writes the site's patroni.yml (0600, the postgres OS user's: it holds passwords). */
export function writePatroniConfig(config: FleetConfig, site: SiteConfig): string {
  const dir = patroniDir(site);
  prepareClusterDir(dir);
  const file = patroniConfigFile(site);
  writeFileForPgUser(file, `${JSON.stringify(patroniDocument(config, site), null, 2)}\n`, PG_OS_USER, isRoot);
  return file;
}

