// The deployment's topology, resolved: each site's parts (host, port, URLs), its HSM, the etcd members.
// What the file leaves out is the local two-site simulation's (loopback, or the network namespaces).
import { isIP } from 'node:net';
import { basename, join } from 'node:path';
import { FleetError } from '../errors.js';
import type { Deployment } from './schema.js';
import { simulatedHost, simulatedNetns } from './placement.js';
import { secretFile } from './sources.js';
import { apiServesHttps, checkHttpsUrl, statusServesHttps } from './https.js';
import { DEFAULT_ETCD_PORTS } from './env.js';
import { DATABASE_CLIENTS, DATABASE_ROLES, SITE_IDS, type DatabaseClient, type EtcdMember, type EtcdMemberName, type SiteConfig, type SiteHsmConfig, type SiteId } from './types.js';

/** Batch worker instances per host whose metrics ports (sites.<id>.metrics.worker + N - 1) are kept free. */
export const MAX_WORKER_INSTANCES = 8;

/** Ports of the local simulation's parts when the file names none. */
const DEFAULT_PORTS: Readonly<Record<SiteId, { postgres: number; redis: number; api: number; status: number; patroni: number; agentMetrics: number }>> = {
  a: { postgres: 15432, redis: 16379, api: 18080, status: 18090, patroni: 18008, agentMetrics: 18102 },
  b: { postgres: 15433, redis: 16380, api: 18081, status: 18091, patroni: 18009, agentMetrics: 18112 },
};
export const DEFAULT_PKCS11_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface ResolveContext {
  readonly stateDir: string;
  readonly deploymentDir: string;
  /** This process's site (the file's this.site, or a on the witness). */
  readonly own: SiteId;
  readonly env: Record<string, string | undefined>;
  /** Which key a variable set, so an error names the variable (env.ts). */
  readonly fromEnv: ReadonlyMap<string, string>;
}

/** An address or CIDR range allowed to read /metrics. */
function checkScraper(entry: string, key: string): string {
  const [address, bits] = entry.split('/');
  const family = isIP(address ?? '');
  const max = family === 6 ? 128 : 32;
  if (family === 0 || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) throw refuse(`${key}: "${entry}" is not an IP address or CIDR range`);
  return entry;
}

const refuse = (message: string) => new FleetError('CONFIG_INVALID', `invalid configuration: ${message}`);

function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** host:port/database of a URL, the part two URLs must share to reach the same database. */
function endpointOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}/${databaseOf(url)}`;
}

/** A key as an operator finds it: the variable that set it, or its path in the file. */
function nameOf(ctx: ResolveContext, key: string): string {
  return ctx.fromEnv.get(key) ?? key;
}

function resolveHsm(d: Deployment, ctx: ResolveContext, id: SiteId, dir: string): SiteHsmConfig {
  const hsm = d.hsm[id] ?? {};
  const modulePath = hsm.modulePath ?? DEFAULT_PKCS11_MODULE;
  const pinSource = hsm.pin ?? `file:${join(ctx.deploymentDir, 'secrets', `hsm-${id}.pin`)}`;
  return {
    modulePath,
    // SoftHSM's token directory is its configuration file's; another module ignores it.
    softhsmConf: hsm.softhsmConf ?? (/softhsm/i.test(basename(modulePath)) ? join(dir, 'hsm', 'softhsm2.conf') : undefined),
    tokenLabel: hsm.token?.label ?? `${d.hsm.tokenPrefix}-${id}`,
    slot: hsm.token?.slot,
    pinSource,
    pinFile: secretFile(pinSource, ctx.env),
  };
}

export function resolveSite(d: Deployment, ctx: ResolveContext, id: SiteId): SiteConfig {
  const s = d.sites[id] ?? {};
  const netns = d.simulation;
  const host = s.host ?? simulatedHost(id, netns);
  const dir = s.dir ?? join(ctx.stateDir, `site-${id}`);
  const database = d.database.name ?? 'fleetpki';
  const pgHost = s.postgres?.host ?? host;
  const pgPort = s.postgres?.port ?? DEFAULT_PORTS[id].postgres;
  const redisHost = s.redis?.host ?? host;
  const redisPort = s.redis?.port ?? DEFAULT_PORTS[id].redis;
  const apiHost = s.api?.host ?? host;
  const apiPort = s.api?.port ?? DEFAULT_PORTS[id].api;
  const statusHost = s.status?.host ?? host;
  const statusPort = s.status?.port ?? DEFAULT_PORTS[id].status;
  // Patroni runs beside PostgreSQL: its REST API is on the database's host unless the file says otherwise.
  const patroniHost = s.patroni?.host ?? pgHost;
  const patroniPort = s.patroni?.port ?? DEFAULT_PORTS[id].patroni;
  const apiHttps = apiServesHttps(d, (key) => nameOf(ctx, key));
  const statusHttps = statusServesHttps(d);
  const statusHttpPort = s.status?.httpPort;
  // Without tls.status the status port itself is plain HTTP, so a plain listener beside it means the
  // file expected HTTPS that is not configured: refused, not served in clear.
  if (statusHttpPort !== undefined && !statusHttps) throw refuse(`${nameOf(ctx, `sites.${id}.status.httpPort`)} is the plain-HTTP listener for OCSP and CRLs beside HTTPS; it needs tls.status (without it sites.${id}.status.port is plain HTTP already)`);
  const apiUrl = (s.api?.url ?? `${apiHttps ? 'https' : 'http'}://${apiHost}:${apiPort}`).replace(/\/$/, '');
  const statusUrl = (s.status?.url ?? `${statusHttps ? 'https' : 'http'}://${statusHost}:${statusPort}`).replace(/\/$/, '');
  if (apiHttps) checkHttpsUrl(apiUrl, nameOf(ctx, `sites.${id}.api.url`), 'the issuer API serves HTTPS (api.tls, tls.api)');
  if (statusHttps) checkHttpsUrl(statusUrl, nameOf(ctx, `sites.${id}.status.url`), 'tls.status is set (the status responder serves HTTPS)');
  const ownerUrl = s.postgres?.url;
  if (ownerUrl && databaseOf(ownerUrl) !== database) {
    throw refuse(`${nameOf(ctx, `sites.${id}.postgres.url`)} names database "${databaseOf(ownerUrl)}" but ${nameOf(ctx, 'database.name')} is "${database}"; set one of them`);
  }
  const databaseUrl = ownerUrl ?? `postgres://${d.database.owner}@${pgHost}:${pgPort}/${database}`;
  // The service URL is the owner URL with each service's role as user, unless it is given; then it must
  // reach the same host, port and database (a status responder once wrote into another database than
  // the one its process was pointed at).
  let serviceBase: string;
  if (s.postgres?.serviceUrl) {
    if (endpointOf(s.postgres.serviceUrl) !== endpointOf(databaseUrl)) {
      throw refuse(`${nameOf(ctx, `sites.${id}.postgres.serviceUrl`)} reaches ${endpointOf(s.postgres.serviceUrl)} but the owner's connection reaches ${endpointOf(databaseUrl)}; the services must use the CA's database`);
    }
    serviceBase = s.postgres.serviceUrl;
  } else if (ownerUrl) {
    const u = new URL(ownerUrl);
    // The owner's password is not a service role's (their passwords: secrets.postgres).
    u.password = '';
    serviceBase = u.toString();
  } else {
    serviceBase = `postgres://x@${pgHost}:${pgPort}/${database}`;
  }
  const asRole = (client: DatabaseClient): string => {
    const u = new URL(serviceBase);
    u.username = DATABASE_ROLES[client];
    return u.toString();
  };
  const hsm = resolveHsm(d, ctx, id, dir);
  return {
    id,
    dir,
    host,
    netns: simulatedNetns(id, netns),
    pgPort,
    redisPort,
    apiPort,
    statusPort,
    statusHttpPort,
    // The agent (one per site) serves metrics by default; the daemons and workers, of which tests start
    // several per site, only where a port is configured.
    metrics: { ...s.metrics, agent: s.metrics?.agent ?? DEFAULT_PORTS[id].agentMetrics, ...(s.metrics?.scrapers ? { scrapers: s.metrics.scrapers.map((entry) => checkScraper(entry, `sites.${id}.metrics.scrapers`)) } : {}) },
    patroniHost,
    patroniPort,
    databaseUrl,
    serviceDatabaseUrls: Object.fromEntries(DATABASE_CLIENTS.map((c) => [c, asRole(c)])) as Record<DatabaseClient, string>,
    redisUrl: s.redis?.url ?? `redis://${redisHost}:${redisPort}`,
    softhsmConf: hsm.softhsmConf ?? join(dir, 'hsm', 'softhsm2.conf'),
    hsmTokenLabel: hsm.tokenLabel,
    hsmPinFile: hsm.pinFile,
    pgHost,
    redisHost,
    apiHost,
    statusHost,
    apiUrl,
    statusUrl,
    hsm,
  };
}

export function resolveEtcdMembers(d: Deployment, sites: Readonly<Record<SiteId, SiteConfig>>, stateDir: string): EtcdMember[] {
  const netns = d.simulation;
  checkEtcdTlsMaterial(d);
  // Named TLS material makes https the default; a URL the file gives must then say https too.
  const clientScheme = d.tls.etcd ? 'https' : 'http';
  const peerScheme = d.tls.etcdPeer ? 'https' : 'http';
  return (['a', 'b', 'witness'] as const).map((name: EtcdMemberName): EtcdMember => {
    const m = d.etcd.members[name] ?? {};
    const defaultHost = name === 'witness' ? simulatedHost(name, netns) : sites[name].host;
    const clientUrl = (m.clientUrl ?? `${clientScheme}://${defaultHost}:${DEFAULT_ETCD_PORTS[name]}`).replace(/\/$/, '');
    const peerUrl = (m.peerUrl ?? `${peerScheme}://${new URL(clientUrl).hostname}:${Number(new URL(clientUrl).port || 2379) + 1}`).replace(/\/$/, '');
    // No plaintext fallback: material named for etcd means every member is reached over TLS.
    if (d.tls.etcd && !clientUrl.startsWith('https:')) throw refuse(`etcd.members.${name}.clientUrl=${clientUrl} must be https:// when tls.etcd is set`);
    if (d.tls.etcdPeer && !peerUrl.startsWith('https:')) throw refuse(`etcd.members.${name}.peerUrl=${peerUrl} must be https:// when tls.etcdPeer is set`);
    const dir = m.dir ?? (name === 'witness' ? join(stateDir, 'witness', 'etcd') : join(sites[name].dir, 'etcd'));
    return { name, host: new URL(clientUrl).hostname, netns: simulatedNetns(name, netns), clientUrl, peerUrl, dir };
  });
}

/** etcd's TLS comes whole: members that demand client certificates need a CA to check them and clients that have one. */
function checkEtcdTlsMaterial(d: Deployment): void {
  const { caBundle, etcd, etcdPeer, etcdClient } = d.tls;
  if ((etcd || etcdPeer || etcdClient) && !caBundle) throw refuse('tls.etcd, tls.etcdPeer and tls.etcdClient need tls.caBundle (the CA the other side is checked against)');
  if (etcd && !etcdClient) throw refuse('tls.etcd is set (members require client certificates) but tls.etcdClient, this host\'s client pair, is not');
  if (etcdClient && !etcd) throw refuse('tls.etcdClient is set but tls.etcd is not: the members would listen without TLS');
}

/** No two parts may listen on one host and port (on one machine, the simulation's ports must all differ). */
export function checkPlacesDiffer(sites: Readonly<Record<SiteId, SiteConfig>>, members: readonly EtcdMember[]): void {
  const places = new Map<string, string>();
  const claim = (where: string, what: string) => {
    const other = places.get(where);
    if (other) throw refuse(`${other} and ${what} both listen on ${where}: ports on one host must all differ (FLEETPKI_*_PORT_*, sites.<site>.<part>.port, etcd.members.<member>.*Url)`);
    places.set(where, what);
  };
  for (const id of SITE_IDS) {
    const s = sites[id];
    claim(`${s.pgHost}:${s.pgPort}`, `sites.${id}.postgres`);
    claim(`${s.redisHost}:${s.redisPort}`, `sites.${id}.redis`);
    claim(`${s.apiHost}:${s.apiPort}`, `sites.${id}.api`);
    claim(`${s.statusHost}:${s.statusPort}`, `sites.${id}.status`);
    claim(`${s.patroniHost}:${s.patroniPort}`, `sites.${id}.patroni`);
    if (s.statusHttpPort !== undefined) claim(`${s.statusHost}:${s.statusHttpPort}`, `sites.${id}.status.httpPort`);
    for (const [part, port] of Object.entries(s.metrics)) {
      if (typeof port !== 'number') continue;
      // A host's batch workers @1..@N take consecutive ports from sites.<id>.metrics.worker.
      const count = part === 'worker' ? MAX_WORKER_INSTANCES : 1;
      for (let n = 0; n < count; n++) claim(`${s.host}:${port + n}`, `sites.${id}.metrics.${part}${count > 1 ? ` (batch worker @${n + 1})` : ''}`);
    }
  }
  for (const m of members) {
    claim(new URL(m.clientUrl).host, `etcd.members.${m.name}.clientUrl`);
    claim(new URL(m.peerUrl).host, `etcd.members.${m.name}.peerUrl`);
  }
}
