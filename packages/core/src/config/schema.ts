// The one schema of fleetpki's configuration: the deployment file (/etc/fleetpki/fleetpki.yaml) as it is
// written, after the environment's overrides are laid over it (env.ts). Every key is optional; what a key
// leaves out is a default (here for the tunables, in sites.ts for the topology, which depends on the site).
import { z } from 'zod';
import { HOST_SERVICES, type TlsPart } from './types.js';

const integer = (min: number, max: number, what = 'an integer') => {
  const error = `expected ${what} ${min}-${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
export const portSchema = integer(1, 65535, 'a port');
const seconds = (min: number, max: number) => integer(min, max, 'a number of seconds');
const count = (min: number, max: number) => integer(min, max, 'a whole number');
const onOff = z.boolean({ error: 'expected true or false' });
const absolutePath = z.string({ error: 'expected an absolute path' }).regex(/^\//, { error: 'expected an absolute path' });
const hostSchema = z.string({ error: 'expected a host name or IP address' }).regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9][A-Za-z0-9.:-]*)$/, { error: 'expected a host name or IP address' });
const urlOf = (protocols: RegExp, what: string) => z.url({ protocol: protocols, error: `expected a ${what} URL` });
const pgUrl = urlOf(/^postgres(ql)?$/, 'postgres://');
const httpUrl = urlOf(/^https?$/, 'http(s)://');
const identifier = z.string({ error: 'expected a name of lower-case letters, digits and _' }).regex(/^[a-z_][a-z0-9_]*$/, { error: 'expected a name of lower-case letters, digits and _' });

/**
 * Where a secret is read from: `file:/path` or `/path` (a file), or `credential:<name>`, a systemd
 * credential (LoadCredential=), read from `$CREDENTIALS_DIRECTORY/<name>`. Never the secret itself.
 */
export const secretSourceSchema = z
  .string({ error: 'expected a secret source: file:/path, /path or credential:<name>' })
  .regex(/^(file:\/|\/|credential:(?!\.\.?$)[A-Za-z0-9_.-]+$)/, { error: 'expected a secret source: file:/path, /path or credential:<name>' });

const endpoint = { host: hostSchema.optional(), port: portSchema.optional() };
const siteSchema = z.strictObject({
  /** The site's host: the default of every part's host below. */
  host: hostSchema.optional(),
  /** Local state of the site's parts on this machine (clusters, agent's pid and log). */
  dir: absolutePath.optional(),
  postgres: z.strictObject({ ...endpoint, url: pgUrl.optional(), serviceUrl: pgUrl.optional() }).optional(),
  redis: z.strictObject({ ...endpoint, url: urlOf(/^rediss?$/, 'redis(s)://').optional() }).optional(),
  api: z.strictObject({ ...endpoint, url: httpUrl.optional() }).optional(),
  /** Patroni's REST API on the site's database host (database.ha patroni): health, switchover, `patronictl`. */
  patroni: z.strictObject(endpoint).optional(),
  status: z.strictObject({
    ...endpoint,
    url: httpUrl.optional(),
    /**
     * With tls.status: a second, plain-HTTP listener that serves OCSP and CRLs only (RFC 5019 5: relying
     * parties fetch these signed objects over http; an https fetch would need the very status it checks).
     */
    httpPort: portSchema.optional(),
  }).optional(),
  /**
   * The metrics listeners (plain HTTP, GET /metrics) of the processes without an HTTP server of their
   * own (docs/metrics.md); a process without a port serves none. FLEETPKI_METRICS_PORT overrides.
   */
  metrics: z.strictObject({
    daemons: portSchema.optional(),
    worker: portSchema.optional(),
    agent: portSchema.optional(),
    /** Who may read /metrics, on these listeners and the API's and status responder's: addresses or CIDR ranges (default: this host). */
    scrapers: z.array(z.string().min(1)).optional(),
  }).optional(),
});

const etcdMemberSchema = z.strictObject({ clientUrl: httpUrl.optional(), peerUrl: httpUrl.optional(), dir: absolutePath.optional() });

// SoftHSM token labels are at most 32 characters; "-root" is appended to the prefix.
const tokenLabel = z.string({ error: 'expected a token label of 1-32 characters' }).min(1, { error: 'expected a token label of 1-32 characters' }).max(32, { error: 'expected a token label of 1-32 characters' });
const siteHsmSchema = z.strictObject({
  modulePath: absolutePath.optional(),
  softhsmConf: absolutePath.optional(),
  token: z.strictObject({ label: tokenLabel.optional(), slot: count(0, 2 ** 32 - 1).optional() }).optional(),
  pin: secretSourceSchema.optional(),
});

const keyPair = z.strictObject({ cert: absolutePath, key: secretSourceSchema });

const labelsSchema = z.array(z.string().regex(/^[a-z0-9-]+$/, { error: 'expected an enrolment label (a-z, 0-9, -)' }), { error: 'expected a list of enrolment labels' });

export const deploymentSchema = z.strictObject({
  this: z.strictObject({
    /** Which host of the deployment this is: site a's, site b's, or the witness's. */
    site: z.enum(['a', 'b', 'witness'], { error: 'expected a, b or witness' }).default('a'),
    /** The services this host runs (default: every one of a site's, etcd alone on the witness). */
    services: z.array(z.enum(HOST_SERVICES, { error: `expected one of ${HOST_SERVICES.join(', ')}` })).optional(),
  }).prefault({}),
  paths: z.strictObject({
    state: absolutePath.optional(),
    deployment: absolutePath.optional(),
    /** The installation the programs run from (scripts/package.sh's folder): what the simulation starts services and agents from. */
    programs: absolutePath.optional(),
  }).prefault({}),
  database: z.strictObject({
    name: identifier.optional(),
    owner: identifier.default('fleetpki'),
    /**
     * Who keeps PostgreSQL highly available (issue 35): `patroni` (one Patroni per site, etcd as its store,
     * synchronous_mode_strict, pg_rewind; the site agent keeps only the CA's epoch and vouching), or
     * `agent`, the site agent's own promote/rewind, which Patroni is replacing.
     */
    ha: z.enum(['agent', 'patroni'], { error: 'expected agent or patroni' }).default('agent'),
  }).prefault({}),
  sites: z.strictObject({ a: siteSchema.optional(), b: siteSchema.optional() }).prefault({}),
  etcd: z.strictObject({
    members: z.strictObject({ a: etcdMemberSchema.optional(), b: etcdMemberSchema.optional(), witness: etcdMemberSchema.optional() }).prefault({}),
    prefix: z.string().regex(/^\/.*\/$/, { error: 'expected a key prefix starting and ending with /' }).default('/fleetpki/sites/'),
    credentialsDir: absolutePath.optional(),
  }).prefault({}),
  hsm: z.strictObject({
    tokenPrefix: z.string().regex(/^[a-z][a-z0-9-]{0,26}$/, { error: 'expected a token prefix: a lower-case letter, then up to 26 of a-z, 0-9, -' }).default('fleetpki'),
    a: siteHsmSchema.optional(),
    b: siteHsmSchema.optional(),
    root: z.strictObject({ tokenLabel: tokenLabel.optional(), softhsmConf: absolutePath.optional() }).optional(),
  }).prefault({}),
  secrets: z.strictObject({
    postgres: z.strictObject({ owner: secretSourceSchema.optional(), issuer: secretSourceSchema.optional(), worker: secretSourceSchema.optional(), status: secretSourceSchema.optional(), operator: secretSourceSchema.optional() }).optional(),
    redis: secretSourceSchema.optional(),
    etcd: secretSourceSchema.optional(),
    /** The backup repository's encryption passphrase (pgBackRest repo1-cipher-pass). */
    backup: secretSourceSchema.optional(),
  }).prefault({}),
  tls: z.strictObject({
    caBundle: absolutePath.optional(),
    api: keyPair.optional(),
    status: keyPair.optional(),
    postgres: keyPair.optional(),
    redis: keyPair.optional(),
    etcd: keyPair.optional(),
    etcdPeer: keyPair.optional(),
    etcdClient: keyPair.optional(),
  } satisfies Record<TlsPart | 'caBundle', z.ZodType>).prefault({}),
  /**
   * pgBackRest: WAL archived from whichever site is primary and full/differential backups, into one
   * repository off the database hosts (a path here: a third directory or a mounted share; S3 in
   * production, docs/backup.md), encrypted; `retention` counts the backups kept.
   */
  backup: z.strictObject({
    repository: absolutePath.optional(),
    /** Where a restore drill restores into: a volume of its own, not the live cluster's (a full copy of the database lands there). */
    scratch: absolutePath.optional(),
    retention: z.strictObject({ full: count(1, 100).default(2), differential: count(1, 1_000).default(7) }).prefault({}),
  }).prefault({}),
  crl: z.strictObject({ baseUrl: httpUrl.optional() }).prefault({}),
  ocsp: z.strictObject({
    url: httpUrl.optional(),
    maxAgeSeconds: seconds(0, 86_400).default(300),
    onDemand: z.strictObject({ perAddressPerSecond: count(1, 1_000_000).default(20), concurrency: count(1, 16).default(1) }).prefault({}),
  }).prefault({}),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { error: 'expected trace, debug, info, warn, error, fatal or silent' }).default('info') }).prefault({}),
  /** The local two-site simulation only: each site and the witness in a network namespace of its own. */
  simulation: z.strictObject({
    netns: onOff.default(false),
    /** The namespaces' names, `<prefix>-a|b|witness`: another simulation on the machine (a test's) takes its own. */
    namespacePrefix: z.string().regex(/^[a-z][a-z0-9-]{0,20}$/, { error: 'expected a namespace prefix: a lower-case letter, then up to 20 of a-z, 0-9, -' }).optional(),
    /** The private link's /24 (`.1` a, `.2` b, `.3` witness, `.254` this machine). */
    subnet: z.string().regex(/^(\d{1,3}\.){3}0\/24$/, { error: 'expected a /24 subnet such as 10.77.0.0/24' }).optional(),
    /** The veth interfaces' prefix: `<prefix>-<from><to>` must fit the kernel's 15 characters. */
    linkPrefix: z.string().regex(/^[a-z][a-z0-9]{0,9}$/, { error: 'expected a link prefix: a lower-case letter, then up to 9 of a-z, 0-9' }).optional(),
  }).prefault({}),
  api: z.strictObject({
    host: hostSchema.optional(),
    // Unset: HTTPS exactly when tls.api names the server's pair (false with tls.api set is refused: https.ts).
    tls: onOff.optional(),
    rateLimitPerMinute: count(1, 100_000_000).default(120_000),
    failedAuthPerMinute: count(1, 1_000_000).default(300),
    connections: count(1, 500).default(16),
    reservedConnections: count(1, 100).default(4),
  }).prefault({}),
  uploads: z.strictObject({
    connections: count(1, 100).default(4),
    perManufacturer: count(1, 100).default(2),
    idleSeconds: seconds(1, 3_600).default(30),
    progressBytes: count(1, 64 * 1024 * 1024).default(1024),
    maxSeconds: seconds(10, 7 * 86_400).default(3_600),
  }).prefault({}),
  deviceKeyBundles: z.strictObject({ concurrency: count(1, 64).default(2), maxSeconds: seconds(1, 86_400).default(600) }).prefault({}),
  siteLease: z.strictObject({ leaseMs: integer(1_000, 10_000, 'milliseconds').default(5_000) }).prefault({}),
  writeWaitMs: integer(500, 60_000, 'milliseconds').default(3_000),
  signing: z.strictObject({
    threads: count(0, 64).default(2),
    check: z.string().regex(/^(all|1-in-[1-9][0-9]{0,5})$/, { error: 'expected "all" or "1-in-N"' }).default('all'),
  }).prefault({}),
  possessionThreads: count(0, 64).default(1),
  intentTimeoutSeconds: seconds(1, 86_400).default(60),
  enrolmentHolds: z.strictObject({ labels: labelsSchema.default([]), retryAfterSeconds: seconds(1, 3_600).default(60) }).prefault({}),
  est: z.strictObject({ revokeSupersededAfterSeconds: z.union([z.literal('never'), seconds(0, 365 * 86_400)], { error: 'expected "never" or a number of seconds 0-31536000' }).default('never') }).prefault({}),
  cmp: z.strictObject({
    implicitConfirm: onOff.default(false),
    confirmWaitSeconds: seconds(1, 86_400).default(300),
    maxClockSkewSeconds: seconds(1, 86_400).default(600),
    authBudget: z.strictObject({ burst: count(1, 100_000).default(10), refillPerSecond: z.number({ error: 'expected a positive number' }).positive({ error: 'expected a positive number' }).max(100_000).default(1) }).prefault({}),
    pbmThreads: count(0, 16).default(1),
  }).prefault({}),
  console: z.strictObject({ idleSeconds: seconds(30, 86_400).default(900), maxAgeSeconds: seconds(60, 7 * 86_400).default(8 * 3_600), drills: onOff.default(false) }).prefault({}),
  dualControl: z.strictObject({
    revocationThreshold: count(0, 1_000_000_000).default(100),
    revocationWindowMinutes: integer(1, 7 * 24 * 60, 'minutes').default(24 * 60),
    approvalTtlMinutes: integer(1, 7 * 24 * 60, 'minutes').default(240),
  }).prefault({}),
});

/** The file as written (and as the environment overrides it): before defaults. */
export type DeploymentInput = z.input<typeof deploymentSchema>;
/** The file after validation, with every tunable's default filled in. */
export type Deployment = z.output<typeof deploymentSchema>;
