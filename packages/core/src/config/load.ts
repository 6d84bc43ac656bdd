// loadConfig: the file (if any), the environment over it, the defaults under both; validated once, at
// start. Precedence, highest first: a FLEETPKI_* variable, the file's key, the default.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetError } from '../errors.js';
import { overlayEnv, parseEnv, type FleetEnv } from './env.js';
import { configFilePath, describeIssues, readConfigFile } from './file.js';
import { deploymentSchema, type Deployment } from './schema.js';
import { checkPlacesDiffer, resolveEtcdMembers, resolveSite } from './sites.js';
import { apiServesHttps, checkHttpsMaterial, isLocalOnly } from './https.js';
import { secretFile } from './sources.js';
import { resolveSimulation } from './placement.js';
import { HOST_SERVICES, TLS_PARTS, type FleetConfig, type SecretFiles, type SiteConfig, type SiteId, type TlsFiles } from './types.js';

/** Marks the root of an installation (scripts/package.sh): the build of every service, no sources. */
export const INSTALLATION_MARKER = 'fleetpki-installation.json';

/**
 * The repository root: the folder holding pnpm-workspace.yaml above this file (src/ or dist/), or, in
 * an installation, the folder holding its marker (services/NAME/dist/, migrations/).
 */
export function findRepoRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml')) || existsSync(join(dir, INSTALLATION_MARKER))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new FleetError('CONFIG_INVALID', `no pnpm-workspace.yaml or ${INSTALLATION_MARKER} above ${start}`);
    dir = parent;
  }
}

/** The file's document with the environment laid over it, validated: a CONFIG_INVALID names every bad key. */
export function loadDeployment(env: FleetEnv = process.env): { deployment: Deployment; file: string | undefined; fromEnv: ReadonlyMap<string, string> } {
  const e = parseEnv(env);
  const file = configFilePath(env);
  const { doc, fromEnv } = overlayEnv(file ? readConfigFile(file) : {}, e);
  const parsed = deploymentSchema.safeParse(doc);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error.issues, doc, fromEnv);
    throw new FleetError('CONFIG_INVALID', `invalid configuration${file ? ` in ${file}` : ''}: ${problems.join('; ')}`, { details: { problems, ...(file ? { file } : {}) } });
  }
  return { deployment: parsed.data, file, fromEnv };
}

function resolveSecrets(d: Deployment, env: FleetEnv): { secrets: SecretFiles; tls: TlsFiles } {
  const file = (source: string | undefined) => (source === undefined ? undefined : secretFile(source, env));
  const postgres = Object.fromEntries(Object.entries(d.secrets.postgres ?? {}).flatMap(([role, source]) => (source ? [[role, file(source)!]] : [])));
  const parts = Object.fromEntries(TLS_PARTS.flatMap((part) => {
    const pair = d.tls[part];
    return pair ? [[part, { cert: pair.cert, key: file(pair.key)! }]] : [];
  }));
  return { secrets: { postgres, redis: file(d.secrets.redis), etcd: file(d.secrets.etcd), backup: file(d.secrets.backup) }, tls: { caBundle: d.tls.caBundle, parts } };
}

/** Where a site's OCSP and CRLs are fetched from: its plain-HTTP listener when it has one, else its status URL. */
function plainStatusUrl(site: SiteConfig): string {
  return site.statusHttpPort !== undefined ? `http://${site.statusHost}:${site.statusHttpPort}` : site.statusUrl;
}

/**
 * Reads and validates the configuration once. A bad value throws CONFIG_INVALID naming the key (and the
 * variable, when one set it), so a process stops at start-up instead of failing later somewhere less obvious.
 */
export function loadConfig(env: FleetEnv = process.env): FleetConfig {
  const { deployment: d, file, fromEnv } = loadDeployment(env);
  const repoRoot = findRepoRoot();
  const stateDir = resolve(d.paths.state ?? join(repoRoot, '.fleetpki'));
  const deploymentDir = d.paths.deployment ?? stateDir;
  const thisName = d.this.site;
  const own: SiteId = thisName === 'witness' ? 'a' : thisName;
  const services = d.this.services ?? (thisName === 'witness' ? ['etcd' as const] : [...HOST_SERVICES]);
  if (thisName === 'witness' && services.some((s) => s !== 'etcd')) throw new FleetError('CONFIG_INVALID', `invalid configuration: this.services: the witness host runs etcd only, got ${JSON.stringify(services)}`);
  const ctx = { stateDir, deploymentDir, own, env, fromEnv };
  checkHttpsMaterial(d);
  const sites = { a: resolveSite(d, ctx, 'a'), b: resolveSite(d, ctx, 'b') };
  const members = resolveEtcdMembers(d, sites, stateDir);
  checkPlacesDiffer(sites, members);
  const netns = resolveSimulation(d.simulation);
  const apiHost = d.api.host ?? sites[own].apiHost;
  const apiTls = apiServesHttps(d, (key) => fromEnv.get(key) ?? key);
  // Tokens travel in headers: off loopback they need TLS (the namespaces' link never leaves this machine).
  if (!apiTls && !isLocalOnly(apiHost, netns)) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: ${fromEnv.get('api.host') ?? 'api.host'}=${apiHost} needs FLEETPKI_API_TLS=on (api.tls: true, or tls.api; plain HTTP is for loopback only)`);
  }
  // The status responder's /healthz and /metrics tell what the site is doing (its lease, its signing):
  // off loopback they go over HTTPS like the API's. OCSP and CRLs are the exception, on a plain listener
  // of their own (sites.<id>.status.httpPort): signed objects that relying parties fetch over http.
  const statusListen = sites[own].host;
  if (thisName !== 'witness' && services.includes('status-responder') && !d.tls.status && !isLocalOnly(statusListen, netns)) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: the status responder would listen on ${fromEnv.get(`sites.${own}.host`) ?? `sites.${own}.host`}=${statusListen} in plain HTTP; off loopback set tls.status (FLEETPKI_TLS_STATUS_CERT/_KEY) for HTTPS, and sites.${own}.status.httpPort for OCSP and CRLs over plain HTTP`);
  }
  const leaseMs = d.siteLease.leaseMs;
  const secretFiles = resolveSecrets(d, env);
  return {
    repoRoot,
    programsDir: d.paths.programs ?? repoRoot,
    stateDir,
    deploymentDir,
    configFile: file,
    simulation: netns,
    thisHost: { name: thisName, services },
    ...secretFiles,
    site: own,
    sites,
    pkcs11Module: sites[own].hsm.modulePath,
    logLevel: d.log.level,
    pgUser: d.database.owner,
    pgDatabase: d.database.name ?? 'fleetpki',
    databaseHa: d.database.ha,
    hsmTokenPrefix: d.hsm.tokenPrefix,
    rootTokenLabel: d.hsm.root?.tokenLabel ?? `${d.hsm.tokenPrefix}-root`,
    rootHsm: { dir: join(deploymentDir, 'root-hsm'), softhsmConf: d.hsm.root?.softhsmConf ?? join(deploymentDir, 'root-hsm', 'softhsm2.conf') },
    // Devices fetch both over plain HTTP where there is a listener for it (RFC 5019 5; RFC 5280 4.2.1.13),
    // else from the status port as it is served.
    crlBaseUrl: d.crl.baseUrl ?? `${plainStatusUrl(sites.a)}/crl/`,
    ocspUrl: d.ocsp.url ?? `${plainStatusUrl(sites[own])}/ocsp`,
    api: {
      rateLimitPerMinute: d.api.rateLimitPerMinute,
      failedAuthPerMinute: d.api.failedAuthPerMinute,
      host: apiHost,
      tls: apiTls,
      tlsDir: join(deploymentDir, 'tls', `site-${own}`),
      connections: d.api.connections,
      reservedConnections: d.api.reservedConnections,
    },
    uploads: d.uploads,
    deviceKeyBundles: d.deviceKeyBundles,
    siteLease: { leaseMs, renewEveryMs: Math.max(200, Math.floor(leaseMs / 5)) },
    consensus: {
      members,
      endpoints: members.map((m) => m.clientUrl),
      prefix: d.etcd.prefix,
      ttlSeconds: Math.max(2, Math.ceil(leaseMs / 1000)),
      credentialsDir: d.etcd.credentialsDir ?? join(stateDir, 'etcd-credentials'),
    },
    // The repository belongs to the clusters (like stateDir), not to one deployment on them.
    backup: {
      repository: d.backup.repository ?? join(stateDir, 'backup-repo'),
      scratch: d.backup.scratch ?? join(stateDir, 'restore-scratch'),
      stanza: 'fleetpki',
      cipherPassFile: secretFiles.secrets.backup ?? join(stateDir, 'backup-secrets', 'cipher-pass'),
      retention: d.backup.retention,
    },
    writeWaitMs: d.writeWaitMs,
    possessionThreads: d.possessionThreads,
    signing: { threads: d.signing.threads, checkEvery: d.signing.check === 'all' ? 1 : Number(d.signing.check.slice(5)) },
    ocspMaxAgeSeconds: d.ocsp.maxAgeSeconds,
    ocspOnDemand: d.ocsp.onDemand,
    intentTimeoutSeconds: d.intentTimeoutSeconds,
    cmp: d.cmp,
    enrolmentHolds: d.enrolmentHolds,
    est: { revokeSupersededAfterSeconds: d.est.revokeSupersededAfterSeconds === 'never' ? null : d.est.revokeSupersededAfterSeconds },
    console: d.console,
    dualControl: d.dualControl,
  };
}
