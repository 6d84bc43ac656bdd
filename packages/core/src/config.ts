/* eslint-disable max-lines -- every setting of a deployment in one schema, read once, so an operator finds all of them in one place; issue 34 turns the environment variables into one configuration file and splits this by part */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FleetError } from './errors.js';

export const SITE_IDS = ['a', 'b'] as const;
export type SiteId = (typeof SITE_IDS)[number];

/**
 * Who connects to the CA's database, each as a role of its own with exactly the grants its code uses
 * (migrations/0016_service_roles.sql): the three services and the operators' CLI. The owner role is
 * for migrations (and the owner-only paths: bootstrap, recovery, tests' and benchmarks' set-up).
 */
export const DATABASE_CLIENTS = ['issuer', 'worker', 'status', 'operator'] as const;
export type DatabaseClient = (typeof DATABASE_CLIENTS)[number];
export const DATABASE_ROLES: Readonly<Record<DatabaseClient, string>> = { issuer: 'fleetpki_issuer', worker: 'fleetpki_worker', status: 'fleetpki_status', operator: 'fleetpki_operator' };

/** Where one site's parts listen and keep their state. Locally both sites share a machine; in production
 * each maps to its own host (infra/README.md) with the same field names. */
export interface SiteConfig {
  readonly id: SiteId;
  readonly dir: string;
  /** The address the site's parts listen on and are reached at: 127.0.0.1, or the site's own in its network namespace. */
  readonly host: string;
  /** The network namespace the site's processes run in (FLEETPKI_NETNS=on), else undefined. */
  readonly netns: string | undefined;
  readonly pgPort: number;
  readonly redisPort: number;
  readonly apiPort: number;
  readonly statusPort: number;
  /** The owner's connection: operators, migrations, ceremonies, drills (the CLI). */
  readonly databaseUrl: string;
  /**
   * Each service's connection, as its own role (DATABASE_ROLES). Derived from databaseUrl (same host,
   * port and database, the role as user), or from FLEETPKI_SERVICE_DATABASE_URL with the role as user,
   * so the owner's and a service's connections can never name different databases (databaseUrls).
   */
  readonly serviceDatabaseUrls: Readonly<Record<DatabaseClient, string>>;
  readonly redisUrl: string;
  /** SoftHSM2 configuration file of this site's token directory (SOFTHSM2_CONF). */
  readonly softhsmConf: string;
  readonly hsmTokenLabel: string;
  readonly hsmPinFile: string;
}

export type EtcdMemberName = SiteId | 'witness';

/**
 * FLEETPKI_NETNS=on: the addresses of site A, site B and the witness on the namespaces' private link
 * (10.77.0.0/24; this machine's own end, where tests and the CLI run, is 10.77.0.254).
 */
export const NETNS_HOSTS: Readonly<Record<EtcdMemberName, string>> = { a: '10.77.0.1', b: '10.77.0.2', witness: '10.77.0.3' };
export const NETNS_SUBNET = '10.77.0.0/24';
export const NETNS_ROOT_HOST = '10.77.0.254';

export interface EtcdMember {
  readonly name: EtcdMemberName;
  readonly host: string;
  readonly netns: string | undefined;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dir: string;
}

export interface FleetConfig {
  readonly repoRoot: string;
  /**
   * Where the local clusters live (PostgreSQL, Redis, etcd, the sites' SoftHSM token directories, the
   * agents): shared by every deployment on them (FLEETPKI_STATE_DIR).
   */
  readonly stateDir: string;
  /**
   * Where this deployment keeps its own files: the API's TLS material, the token PINs, the custodians'
   * PIN files, the offline root's HSM, audit checkpoints, drill and benchmark output
   * (FLEETPKI_DEPLOYMENT_DIR). The installation's is its state folder; a test run's is a temporary
   * folder of its own (scripts/run-tests.sh), so a test leaves the installation's files as they were.
   */
  readonly deploymentDir: string;
  /** The site this process belongs to. */
  readonly site: SiteId;
  readonly sites: Readonly<Record<SiteId, SiteConfig>>;
  readonly pkcs11Module: string;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Name of the PostgreSQL superuser the local clusters are created with. */
  readonly pgUser: string;
  /**
   * The CA's database on every site: FLEETPKI_PG_DATABASE, or the database FLEETPKI_DATABASE_URL names.
   * The test suite and the benchmarks run on throw-away databases of the same clusters; this one name
   * is what every URL below, the queue's Redis prefix and the service start-up check follow.
   */
  readonly pgDatabase: string;
  /** Prefix of the SoftHSM token labels (`<prefix>-a`, `<prefix>-b`, `<prefix>-root`); tests use their own tokens. */
  readonly hsmTokenPrefix: string;
  /** Label of the token holding the offline root CA key, in the root's own HSM (rootHsm). */
  readonly rootTokenLabel: string;
  /**
   * The offline root's HSM: locally a SoftHSM token directory of its own, which no service's PKCS#11
   * configuration lists; in production a separate HSM kept offline. Only ceremonies open it.
   */
  readonly rootHsm: { readonly dir: string; readonly softhsmConf: string };
  /**
   * Base URL of the CRL distribution points written into certificates. One value for the deployment
   * (in production a name served by whichever site is active), so a shard CRL published by site B after
   * a failover still matches the certificates site A issued.
   */
  readonly crlBaseUrl: string;
  /** Base URL of the OCSP responder, for operators and tests. */
  readonly ocspUrl: string;
  /** Two-person rule: what needs a second officer's approval, and how long a request waits for it. */
  readonly dualControl: {
    /**
     * Revoking more certificates than this needs an approval, counted per person over a sliding window
     * (what they revoked without approval in the last revocationWindowMinutes plus the new request),
     * so a large revocation split into small requests needs one all the same.
     */
    readonly revocationThreshold: number;
    readonly revocationWindowMinutes: number;
    readonly approvalTtlMinutes: number;
  };
  /**
   * The active site's lease (ca/site-lease.ts): renewed through the synchronous standby every
   * renewEveryMs; a site that cannot renew stops issuing and stops answering OCSP "good" within leaseMs,
   * and a site taking over waits until the old lease has lapsed.
   */
  readonly siteLease: { readonly leaseMs: number; readonly renewEveryMs: number };
  /**
   * Who is the active CA site is decided by etcd, three members: one per site and a witness in a third
   * place, so either site with the witness is a majority. The site agents campaign for the CA-site role
   * with a lease of ttlSeconds; every service process reads the leader and its lease from here.
   */
  readonly consensus: {
    readonly members: readonly EtcdMember[];
    /** Client URLs of every member. */
    readonly endpoints: readonly string[];
    /** Key prefix of this pair of sites (every deployment on the same clusters shares it). */
    readonly prefix: string;
    readonly ttlSeconds: number;
    /**
     * The etcd users' password files (consensus/etcd-auth.ts). They belong to the cluster, not to a
     * deployment: fixed here, so a configuration copied with another state folder (a drill's, a test's)
     * still reaches the members it shares.
     */
    readonly credentialsDir: string;
  };
  /**
   * How long a write may wait on a primary whose synchronous standby is unreachable before it answers
   * 503 STANDBY_UNAVAILABLE with Retry-After (the write itself completes if the standby comes back).
   */
  readonly writeWaitMs: number;
  /**
   * Signing in the HSM: `threads` signing threads per process (0: sessions on the libuv pool, for a
   * process that signs rarely), and which signatures are verified before use (1 in checkEvery; 1 = all).
   */
  readonly signing: { readonly threads: number; readonly checkEvery: number };
  /**
   * Threads per process that check device requests' proofs of possession (ECDSA over a CSR), off the
   * JavaScript main thread (x509 PossessionThreads); 0 checks on the main thread.
   */
  readonly possessionThreads: number;
  /** OCSP over HTTP GET: max-age never beyond this, whatever the response's nextUpdate (RFC 5019 6.2). */
  readonly ocspMaxAgeSeconds: number;
  /**
   * OCSP answers that need a signature on request and that anyone can ask for (unknown serials,
   * several CertIDs in one request): at most perAddressPerSecond per client address, and at most
   * `concurrency` signatures at once, so they never take the HSM from the responder's own re-signing.
   */
  readonly ocspOnDemand: { readonly perAddressPerSecond: number; readonly concurrency: number };
  /** An online intent with no certificate after this long is released by the reconciler (the device may enrol again). */
  readonly intentTimeoutSeconds: number;
  /**
   * Enrolment labels (a profile and a key role: packages/ca/src/issuance/enrolment-labels.ts) whose new
   * certificates wait for an administrator's approval, whatever the protocol (JSON API, EST, CMP;
   * batches refuse their keys), and the Retry-After a held request is answered with.
   */
  readonly enrolmentHolds: { readonly labels: readonly string[]; readonly retryAfterSeconds: number };
  /**
   * EST (RFC 7030): how long a certificate superseded by a re-enrolment stays good before it is revoked
   * (reason superseded), null for never.
   */
  readonly est: { readonly revokeSupersededAfterSeconds: number | null };
  /**
   * CMP: grant implicit confirmation when a client asks (RFC 9483 4.1.1; off: every certificate waits
   * for its certConf), how long an answered certificate waits for it before it is marked unconfirmed,
   * and how far a request's messageTime may be from this server's clock. authBudget: per client
   * address, how many requests may be having their protection checked or have failed it (burst), and how
   * fast failures are forgiven (packages/ca/src/protocols/cmp-auth-budget.ts). pbmThreads: threads
   * computing password-based MACs off the main thread (0: on it).
   */
  readonly cmp: {
    readonly implicitConfirm: boolean;
    readonly confirmWaitSeconds: number;
    readonly maxClockSkewSeconds: number;
    readonly authBudget: { readonly burst: number; readonly refillPerSecond: number };
    readonly pbmThreads: number;
  };
  /** The operator console's sessions: ended after `idleSeconds` without a request, and `maxAgeSeconds` after sign-in in any case. */
  readonly console: {
    readonly idleSeconds: number;
    readonly maxAgeSeconds: number;
    /** A test deployment: administrators may start a failover drill from the API and the console (it kills the active site). */
    readonly drills: boolean;
  };
  /** Abuse limits of the HTTP API, per client address; where it listens and whether over TLS. */
  readonly api: {
    readonly rateLimitPerMinute: number;
    readonly failedAuthPerMinute: number;
    readonly host: string;
    /** HTTPS with the organisation CA's server certificate; client certificates accepted (mTLS). */
    readonly tls: boolean;
    /** Where `fleetpki tls server` writes this site's key, certificate and client CA bundle. */
    readonly tlsDir: string;
    /** Database connections of the issuer API's general pool (enrolment, batches' reads, tokens, ...). */
    readonly connections: number;
    /**
     * Connections of a pool of their own for revocation, approvals, certificate lookups and health, so
     * that these are never queued behind anything else the API does.
     */
    readonly reservedConnections: number;
  };
  /**
   * Factory manifest uploads (POST /v1/batches). They copy into PostgreSQL through a pool of their own
   * (`connections`, which is also how many the process takes at once), at most `perManufacturer` at a
   * time for one manufacturer; an upload that sends less than `progressBytes` in `idleSeconds`, or is
   * still sending after `maxSeconds`, is cut and leaves nothing behind.
   */
  readonly uploads: {
    readonly connections: number;
    readonly perManufacturer: number;
    readonly idleSeconds: number;
    readonly progressBytes: number;
    readonly maxSeconds: number;
  };
  /**
   * Device-key bundle downloads: each holds an HSM session while it streams; at most `concurrency` at
   * once per process, each closed (its session released) after `maxSeconds` however slowly it is read.
   */
  readonly deviceKeyBundles: { readonly concurrency: number; readonly maxSeconds: number };
}

const port = z.coerce.number().int().min(1024).max(65535);

/** Every variable fleetpki reads, with its default for the local two-site topology. */
const envSchema = z.object({
  FLEETPKI_STATE_DIR: z.string().min(1).optional(),
  FLEETPKI_DEPLOYMENT_DIR: z.string().min(1).optional(),
  FLEETPKI_SITE: z.enum(SITE_IDS).default('a'),
  FLEETPKI_PG_PORT_A: port.default(15432),
  FLEETPKI_PG_PORT_B: port.default(15433),
  FLEETPKI_REDIS_PORT_A: port.default(16379),
  FLEETPKI_REDIS_PORT_B: port.default(16380),
  FLEETPKI_API_PORT_A: port.default(18080),
  FLEETPKI_API_PORT_B: port.default(18081),
  FLEETPKI_STATUS_PORT_A: port.default(18090),
  FLEETPKI_STATUS_PORT_B: port.default(18091),
  // etcd client ports of the three members (site A, site B, the witness); each peer port is the next one.
  FLEETPKI_ETCD_PORT_A: port.default(12379),
  FLEETPKI_ETCD_PORT_B: port.default(12381),
  FLEETPKI_ETCD_PORT_WITNESS: port.default(12383),
  FLEETPKI_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  FLEETPKI_REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  FLEETPKI_PKCS11_MODULE: z.string().min(1).default('/usr/lib/softhsm/libsofthsm2.so'),
  FLEETPKI_HSM_PIN_FILE: z.string().min(1).optional(),
  FLEETPKI_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  FLEETPKI_PG_USER: z.string().regex(/^[a-z_][a-z0-9_]*$/).default('fleetpki'),
  FLEETPKI_PG_DATABASE: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
  // SoftHSM token labels are at most 32 characters; "-root" is appended.
  FLEETPKI_HSM_TOKEN_PREFIX: z.string().regex(/^[a-z][a-z0-9-]{0,26}$/).default('fleetpki'),
  FLEETPKI_SERVICE_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  FLEETPKI_CRL_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  FLEETPKI_DUAL_CONTROL_REVOCATIONS: z.coerce.number().int().min(0).default(100),
  FLEETPKI_DUAL_CONTROL_WINDOW_MINUTES: z.coerce.number().int().min(1).max(7 * 24 * 60).default(24 * 60),
  FLEETPKI_API_HOST: z.string().min(1).optional(),
  FLEETPKI_API_TLS: z.enum(['on', 'off']).default('off'),
  FLEETPKI_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(120_000),
  FLEETPKI_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(300),
  FLEETPKI_SITE_LEASE_MS: z.coerce.number().int().min(1_000).max(10_000).default(5_000),
  FLEETPKI_WRITE_WAIT_MS: z.coerce.number().int().min(500).max(60_000).default(3_000),
  FLEETPKI_SIGNING_THREADS: z.coerce.number().int().min(0).max(64).default(2),
  FLEETPKI_POSSESSION_THREADS: z.coerce.number().int().min(0).max(64).default(1),
  FLEETPKI_SIGNATURE_CHECK: z.string().regex(/^(all|1-in-[1-9][0-9]{0,5})$/, 'must be "all" or "1-in-N"').default('all'),
  FLEETPKI_NETNS: z.enum(['on', 'off']).default('off'),
  FLEETPKI_OCSP_MAX_AGE_SECONDS: z.coerce.number().int().min(0).max(86_400).default(300),
  FLEETPKI_OCSP_ON_DEMAND_PER_ADDRESS: z.coerce.number().int().min(1).default(20),
  FLEETPKI_OCSP_ON_DEMAND_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  FLEETPKI_INTENT_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  FLEETPKI_APPROVAL_LABELS: z.string().regex(/^[a-z0-9-]*(,[a-z0-9-]+)*$/, 'a comma-separated list of enrolment labels').optional(),
  FLEETPKI_APPROVAL_RETRY_AFTER_S: z.coerce.number().int().min(1).max(3_600).optional(),
  // Their names from when only EST held requests: still read, with the same meaning (every protocol).
  FLEETPKI_EST_APPROVAL_LABELS: z.string().regex(/^[a-z0-9-]*(,[a-z0-9-]+)*$/, 'a comma-separated list of enrolment labels').optional(),
  FLEETPKI_EST_RETRY_AFTER_S: z.coerce.number().int().min(1).max(3_600).optional(),
  FLEETPKI_CMP_IMPLICIT_CONFIRM: z.enum(['on', 'off']).default('off'),
  FLEETPKI_CMP_CONFIRM_WAIT_S: z.coerce.number().int().min(1).max(86_400).default(300),
  FLEETPKI_CMP_MAX_CLOCK_SKEW_S: z.coerce.number().int().min(1).max(86_400).default(600),
  FLEETPKI_CMP_AUTH_BURST: z.coerce.number().int().min(1).max(100_000).default(10),
  FLEETPKI_CMP_AUTH_REFILL_PER_SECOND: z.coerce.number().positive().max(100_000).default(1),
  FLEETPKI_CMP_PBM_THREADS: z.coerce.number().int().min(0).max(16).default(1),
  FLEETPKI_CONSOLE_IDLE_S: z.coerce.number().int().min(30).max(86_400).default(900),
  FLEETPKI_CONSOLE_SESSION_MAX_S: z.coerce.number().int().min(60).max(7 * 86_400).default(8 * 3_600),
  FLEETPKI_CONSOLE_DRILLS: z.enum(['on', 'off']).default('off'),
  FLEETPKI_EST_REVOKE_SUPERSEDED_AFTER_S: z.union([z.literal('never'), z.coerce.number().int().min(0).max(365 * 86_400)]).default('never'),
  FLEETPKI_APPROVAL_TTL_MINUTES: z.coerce.number().int().min(1).max(7 * 24 * 60).default(240),
  FLEETPKI_API_CONNECTIONS: z.coerce.number().int().min(1).max(500).default(16),
  FLEETPKI_API_RESERVED_CONNECTIONS: z.coerce.number().int().min(1).max(100).default(4),
  FLEETPKI_UPLOAD_CONNECTIONS: z.coerce.number().int().min(1).max(100).default(4),
  FLEETPKI_UPLOADS_PER_MANUFACTURER: z.coerce.number().int().min(1).max(100).default(2),
  FLEETPKI_UPLOAD_IDLE_S: z.coerce.number().int().min(1).max(3_600).default(30),
  FLEETPKI_UPLOAD_PROGRESS_BYTES: z.coerce.number().int().min(1).max(64 * 1024 * 1024).default(1024),
  FLEETPKI_UPLOAD_MAX_S: z.coerce.number().int().min(10).max(7 * 86_400).default(3_600),
  FLEETPKI_DEVICE_KEY_BUNDLES: z.coerce.number().int().min(1).max(64).default(2),
  FLEETPKI_DEVICE_KEY_BUNDLE_MAX_S: z.coerce.number().int().min(1).max(86_400).default(600),
});

export type FleetEnv = Record<string, string | undefined>;

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

type ParsedEnv = z.infer<typeof envSchema>;

function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** host:port/database of a URL, the part two URLs must share to reach the same database. */
function endpointOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}/${databaseOf(url)}`;
}

/**
 * The one place where the database name and this site's owner and service URLs are derived, from the
 * same settings. The service URL is the owner URL with the service role as user, unless it is given
 * explicitly; then it must reach the same host, port and database, or the configuration is refused
 * (a status responder once wrote into another database than the one its process was pointed at).
 */
function databaseUrls(e: ParsedEnv): { database: string; ownUrl: string | undefined; ownServiceBase: string | undefined } {
  const refuse = (message: string) => new FleetError('CONFIG_INVALID', `invalid configuration: ${message}`);
  const urlDatabase = e.FLEETPKI_DATABASE_URL ? databaseOf(e.FLEETPKI_DATABASE_URL) : undefined;
  if (urlDatabase !== undefined && !/^[a-z_][a-z0-9_]*$/.test(urlDatabase)) throw refuse(`FLEETPKI_DATABASE_URL must name a database (lower-case letters, digits, _), got "${urlDatabase}"`);
  if (urlDatabase && e.FLEETPKI_PG_DATABASE && urlDatabase !== e.FLEETPKI_PG_DATABASE) {
    throw refuse(`FLEETPKI_DATABASE_URL names database "${urlDatabase}" but FLEETPKI_PG_DATABASE is "${e.FLEETPKI_PG_DATABASE}"; set one of them`);
  }
  const database = urlDatabase ?? e.FLEETPKI_PG_DATABASE ?? 'fleetpki';
  let ownServiceBase: string | undefined;
  if (e.FLEETPKI_SERVICE_DATABASE_URL) {
    const owner = e.FLEETPKI_DATABASE_URL ?? `postgres://x@127.0.0.1:${e[`FLEETPKI_PG_PORT_${e.FLEETPKI_SITE.toUpperCase() as 'A' | 'B'}`]}/${database}`;
    if (endpointOf(e.FLEETPKI_SERVICE_DATABASE_URL) !== endpointOf(owner)) {
      throw refuse(`FLEETPKI_SERVICE_DATABASE_URL reaches ${endpointOf(e.FLEETPKI_SERVICE_DATABASE_URL)} but the owner's connection reaches ${endpointOf(owner)}; the services must use the CA's database`);
    }
    ownServiceBase = e.FLEETPKI_SERVICE_DATABASE_URL;
  } else if (e.FLEETPKI_DATABASE_URL) {
    const u = new URL(e.FLEETPKI_DATABASE_URL);
    // The owner's password is not a service role's (production: a .pgpass per service host).
    u.password = '';
    ownServiceBase = u.toString();
  }
  return { database, ownUrl: e.FLEETPKI_DATABASE_URL, ownServiceBase };
}

/** A setting that was renamed: its new name or its old one, never two different values. */
function renamedSetting<K extends keyof ParsedEnv>(e: ParsedEnv, name: K, oldName: keyof ParsedEnv): ParsedEnv[K] | undefined {
  const value = e[name];
  const old = e[oldName] as ParsedEnv[K] | undefined;
  if (value !== undefined && old !== undefined && value !== old) throw new FleetError('CONFIG_INVALID', `invalid configuration: ${String(name)} and its old name ${String(oldName)} are both set, differently; keep ${String(name)}`);
  return value ?? old;
}

/**
 * Reads and validates the configuration once. A bad value throws CONFIG_INVALID naming the variable,
 * so a process stops at start-up instead of failing later somewhere less obvious.
 */
export function loadConfig(env: FleetEnv = process.env): FleetConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message} (got ${JSON.stringify(env[String(issue.path[0])])})`);
    throw new FleetError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, { details: { problems } });
  }
  const e = parsed.data;
  const repoRoot = findRepoRoot();
  const { database, ownUrl, ownServiceBase } = databaseUrls(e);
  /** A service's URL: the base (host, port, database, and any password) with the client's role as user. */
  const asRole = (base: string, client: DatabaseClient): string => {
    const u = new URL(base);
    u.username = DATABASE_ROLES[client];
    return u.toString();
  };
  const stateDir = resolve(e.FLEETPKI_STATE_DIR ?? join(repoRoot, '.fleetpki'));
  const deploymentDir = e.FLEETPKI_DEPLOYMENT_DIR ? resolve(e.FLEETPKI_DEPLOYMENT_DIR) : stateDir;
  // Two hosts on one machine: each site (and the witness) in its own network namespace, on a private
  // link (packages/sites/src/netns.ts); otherwise everything on loopback.
  const netns = e.FLEETPKI_NETNS === 'on';
  const placement = (name: EtcdMemberName): { host: string; netns: string | undefined } => (netns ? { host: NETNS_HOSTS[name], netns: `fleetpki-${name}` } : { host: '127.0.0.1', netns: undefined });
  const site = (id: SiteId): SiteConfig => {
    const upper = id.toUpperCase() as 'A' | 'B';
    const { host } = placement(id);
    const dir = join(stateDir, `site-${id}`);
    const pgPort = e[`FLEETPKI_PG_PORT_${upper}`];
    const redisPort = e[`FLEETPKI_REDIS_PORT_${upper}`];
    const own = id === e.FLEETPKI_SITE;
    return {
      id,
      dir,
      ...placement(id),
      pgPort,
      redisPort,
      apiPort: e[`FLEETPKI_API_PORT_${upper}`],
      statusPort: e[`FLEETPKI_STATUS_PORT_${upper}`],
      // An explicit URL applies to this process's own site only; the other site keeps its local host and
      // port, but always the same database.
      databaseUrl: (own ? ownUrl : undefined) ?? `postgres://${e.FLEETPKI_PG_USER}@${host}:${pgPort}/${database}`,
      serviceDatabaseUrls: Object.fromEntries(DATABASE_CLIENTS.map((c) => [c, asRole((own ? ownServiceBase : undefined) ?? `postgres://x@${host}:${pgPort}/${database}`, c)])) as Record<DatabaseClient, string>,
      redisUrl: (own ? e.FLEETPKI_REDIS_URL : undefined) ?? `redis://${host}:${redisPort}`,
      softhsmConf: join(dir, 'hsm', 'softhsm2.conf'),
      hsmTokenLabel: `${e.FLEETPKI_HSM_TOKEN_PREFIX}-${id}`,
      // The deployment's tokens, the deployment's PIN: a test run's tokens never open with the installation's.
      hsmPinFile: (own ? e.FLEETPKI_HSM_PIN_FILE : undefined) ?? join(deploymentDir, 'secrets', `hsm-${id}.pin`),
    };
  };
  const sites = { a: site('a'), b: site('b') };
  const member = (name: EtcdMemberName, clientPort: number, dir: string): EtcdMember => {
    const where = placement(name);
    return { name, ...where, clientUrl: `http://${where.host}:${clientPort}`, peerUrl: `http://${where.host}:${clientPort + 1}`, dir };
  };
  const members = [
    member('a', e.FLEETPKI_ETCD_PORT_A, join(sites.a.dir, 'etcd')),
    member('b', e.FLEETPKI_ETCD_PORT_B, join(sites.b.dir, 'etcd')),
    member('witness', e.FLEETPKI_ETCD_PORT_WITNESS, join(stateDir, 'witness', 'etcd')),
  ];
  const etcdPorts = [e.FLEETPKI_ETCD_PORT_A, e.FLEETPKI_ETCD_PORT_B, e.FLEETPKI_ETCD_PORT_WITNESS].flatMap((p) => [p, p + 1]);
  const ports = [sites.a.pgPort, sites.b.pgPort, sites.a.redisPort, sites.b.redisPort, sites.a.apiPort, sites.b.apiPort, sites.a.statusPort, sites.b.statusPort, ...etcdPorts];
  if (new Set(ports).size !== ports.length) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: FLEETPKI_*_PORT_* values must all differ (got ${ports.join(', ')})`);
  }
  const apiHost = e.FLEETPKI_API_HOST ?? sites[e.FLEETPKI_SITE].host;
  // Tokens travel in headers: off loopback they need TLS (the namespaces' link never leaves this machine).
  if (e.FLEETPKI_API_TLS === 'off' && !['127.0.0.1', '::1', 'localhost'].includes(apiHost) && !(netns && Object.values(NETNS_HOSTS).includes(apiHost))) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: FLEETPKI_API_HOST=${apiHost} needs FLEETPKI_API_TLS=on (plain HTTP is for loopback only)`);
  }
  return {
    repoRoot,
    stateDir,
    deploymentDir,
    site: e.FLEETPKI_SITE,
    sites,
    pkcs11Module: e.FLEETPKI_PKCS11_MODULE,
    logLevel: e.FLEETPKI_LOG_LEVEL,
    pgUser: e.FLEETPKI_PG_USER,
    pgDatabase: database,
    hsmTokenPrefix: e.FLEETPKI_HSM_TOKEN_PREFIX,
    rootTokenLabel: `${e.FLEETPKI_HSM_TOKEN_PREFIX}-root`,
    rootHsm: { dir: join(deploymentDir, 'root-hsm'), softhsmConf: join(deploymentDir, 'root-hsm', 'softhsm2.conf') },
    crlBaseUrl: e.FLEETPKI_CRL_BASE_URL ?? `http://${sites.a.host}:${sites.a.statusPort}/crl/`,
    ocspUrl: `http://${sites[e.FLEETPKI_SITE].host}:${sites[e.FLEETPKI_SITE].statusPort}/ocsp`,
    api: {
      rateLimitPerMinute: e.FLEETPKI_RATE_LIMIT_PER_MINUTE,
      failedAuthPerMinute: e.FLEETPKI_AUTH_FAILURES_PER_MINUTE,
      host: apiHost,
      tls: e.FLEETPKI_API_TLS === 'on',
      tlsDir: join(deploymentDir, 'tls', `site-${e.FLEETPKI_SITE}`),
      connections: e.FLEETPKI_API_CONNECTIONS,
      reservedConnections: e.FLEETPKI_API_RESERVED_CONNECTIONS,
    },
    uploads: {
      connections: e.FLEETPKI_UPLOAD_CONNECTIONS,
      perManufacturer: e.FLEETPKI_UPLOADS_PER_MANUFACTURER,
      idleSeconds: e.FLEETPKI_UPLOAD_IDLE_S,
      progressBytes: e.FLEETPKI_UPLOAD_PROGRESS_BYTES,
      maxSeconds: e.FLEETPKI_UPLOAD_MAX_S,
    },
    deviceKeyBundles: { concurrency: e.FLEETPKI_DEVICE_KEY_BUNDLES, maxSeconds: e.FLEETPKI_DEVICE_KEY_BUNDLE_MAX_S },
    siteLease: { leaseMs: e.FLEETPKI_SITE_LEASE_MS, renewEveryMs: Math.max(200, Math.floor(e.FLEETPKI_SITE_LEASE_MS / 5)) },
    consensus: {
      members,
      endpoints: members.map((m) => m.clientUrl),
      prefix: '/fleetpki/sites/',
      ttlSeconds: Math.max(2, Math.ceil(e.FLEETPKI_SITE_LEASE_MS / 1000)),
      credentialsDir: join(stateDir, 'etcd-credentials'),
    },
    writeWaitMs: e.FLEETPKI_WRITE_WAIT_MS,
    possessionThreads: e.FLEETPKI_POSSESSION_THREADS,
    signing: { threads: e.FLEETPKI_SIGNING_THREADS, checkEvery: e.FLEETPKI_SIGNATURE_CHECK === 'all' ? 1 : Number(e.FLEETPKI_SIGNATURE_CHECK.slice(5)) },
    ocspMaxAgeSeconds: e.FLEETPKI_OCSP_MAX_AGE_SECONDS,
    ocspOnDemand: { perAddressPerSecond: e.FLEETPKI_OCSP_ON_DEMAND_PER_ADDRESS, concurrency: e.FLEETPKI_OCSP_ON_DEMAND_CONCURRENCY },
    intentTimeoutSeconds: e.FLEETPKI_INTENT_TIMEOUT_SECONDS,
    cmp: {
      implicitConfirm: e.FLEETPKI_CMP_IMPLICIT_CONFIRM === 'on',
      confirmWaitSeconds: e.FLEETPKI_CMP_CONFIRM_WAIT_S,
      maxClockSkewSeconds: e.FLEETPKI_CMP_MAX_CLOCK_SKEW_S,
      authBudget: { burst: e.FLEETPKI_CMP_AUTH_BURST, refillPerSecond: e.FLEETPKI_CMP_AUTH_REFILL_PER_SECOND },
      pbmThreads: e.FLEETPKI_CMP_PBM_THREADS,
    },
    enrolmentHolds: {
      labels: (renamedSetting(e, 'FLEETPKI_APPROVAL_LABELS', 'FLEETPKI_EST_APPROVAL_LABELS') ?? '').split(',').filter(Boolean),
      retryAfterSeconds: renamedSetting(e, 'FLEETPKI_APPROVAL_RETRY_AFTER_S', 'FLEETPKI_EST_RETRY_AFTER_S') ?? 60,
    },
    est: {
      revokeSupersededAfterSeconds: e.FLEETPKI_EST_REVOKE_SUPERSEDED_AFTER_S === 'never' ? null : e.FLEETPKI_EST_REVOKE_SUPERSEDED_AFTER_S,
    },
    console: { idleSeconds: e.FLEETPKI_CONSOLE_IDLE_S, maxAgeSeconds: e.FLEETPKI_CONSOLE_SESSION_MAX_S, drills: e.FLEETPKI_CONSOLE_DRILLS === 'on' },
    dualControl: { revocationThreshold: e.FLEETPKI_DUAL_CONTROL_REVOCATIONS, revocationWindowMinutes: e.FLEETPKI_DUAL_CONTROL_WINDOW_MINUTES, approvalTtlMinutes: e.FLEETPKI_APPROVAL_TTL_MINUTES },
  };
}
