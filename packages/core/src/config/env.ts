// The environment's FLEETPKI_* variables, each overriding one key of the file (precedence: environment,
// then file, then defaults). Every variable keeps the name, the rules and the meaning it had before there
// was a file, so scripts and the test suite set them as they always did.
import { resolve } from 'node:path';
import { z } from 'zod';
import { FleetError } from '../errors.js';
import { SITE_IDS, type EtcdMemberName, type SiteId } from './types.js';
import { simulatedHost } from './placement.js';
import { overlayTlsEnv, tlsEnvSchema } from './env-tls.js';

// A variable's port is above the privileged range, as before; the file accepts any port (a remote 443).
const port = z.coerce.number().int().min(1024).max(65535);
const labels = z.string().regex(/^[a-z0-9-]*(,[a-z0-9-]+)*$/, 'a comma-separated list of enrolment labels');

/** Every variable fleetpki reads. No defaults here: an unset variable leaves the file's key (or its default). */
export const envSchema = z.object({
  FLEETPKI_CONFIG: z.string().min(1).optional(),
  FLEETPKI_STATE_DIR: z.string().min(1).optional(),
  FLEETPKI_DEPLOYMENT_DIR: z.string().min(1).optional(),
  FLEETPKI_SITE: z.enum(SITE_IDS).optional(),
  FLEETPKI_PG_PORT_A: port.optional(),
  FLEETPKI_PG_PORT_B: port.optional(),
  FLEETPKI_REDIS_PORT_A: port.optional(),
  FLEETPKI_REDIS_PORT_B: port.optional(),
  FLEETPKI_API_PORT_A: port.optional(),
  FLEETPKI_API_PORT_B: port.optional(),
  FLEETPKI_STATUS_PORT_A: port.optional(),
  FLEETPKI_STATUS_PORT_B: port.optional(),
  FLEETPKI_PATRONI_PORT_A: port.optional(),
  FLEETPKI_PATRONI_PORT_B: port.optional(),
  // With tls.status: each site's plain-HTTP listener for OCSP and CRLs (sites.<id>.status.httpPort).
  FLEETPKI_STATUS_HTTP_PORT_A: port.optional(),
  FLEETPKI_STATUS_HTTP_PORT_B: port.optional(),
  // etcd client ports of the three members (site A, site B, the witness); each peer port is the next one.
  FLEETPKI_ETCD_PORT_A: port.optional(),
  FLEETPKI_ETCD_PORT_B: port.optional(),
  FLEETPKI_ETCD_PORT_WITNESS: port.optional(),
  FLEETPKI_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  FLEETPKI_REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  FLEETPKI_PKCS11_MODULE: z.string().min(1).optional(),
  FLEETPKI_HSM_PIN_FILE: z.string().min(1).optional(),
  FLEETPKI_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).optional(),
  FLEETPKI_PG_USER: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
  FLEETPKI_PG_DATABASE: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
  FLEETPKI_DATABASE_HA: z.enum(['agent', 'patroni']).optional(),
  // SoftHSM token labels are at most 32 characters; "-root" is appended.
  FLEETPKI_HSM_TOKEN_PREFIX: z.string().regex(/^[a-z][a-z0-9-]{0,26}$/).optional(),
  FLEETPKI_SERVICE_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  FLEETPKI_CRL_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  FLEETPKI_DUAL_CONTROL_REVOCATIONS: z.coerce.number().int().min(0).optional(),
  FLEETPKI_DUAL_CONTROL_WINDOW_MINUTES: z.coerce.number().int().min(1).max(7 * 24 * 60).optional(),
  FLEETPKI_API_HOST: z.string().min(1).optional(),
  FLEETPKI_API_TLS: z.enum(['on', 'off']).optional(),
  FLEETPKI_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).optional(),
  FLEETPKI_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).optional(),
  FLEETPKI_SITE_LEASE_MS: z.coerce.number().int().min(1_000).max(10_000).optional(),
  FLEETPKI_WRITE_WAIT_MS: z.coerce.number().int().min(500).max(60_000).optional(),
  FLEETPKI_SIGNING_THREADS: z.coerce.number().int().min(0).max(64).optional(),
  FLEETPKI_POSSESSION_THREADS: z.coerce.number().int().min(0).max(64).optional(),
  FLEETPKI_SIGNATURE_CHECK: z.string().regex(/^(all|1-in-[1-9][0-9]{0,5})$/, 'must be "all" or "1-in-N"').optional(),
  FLEETPKI_NETNS: z.enum(['on', 'off']).optional(),
  FLEETPKI_OCSP_MAX_AGE_SECONDS: z.coerce.number().int().min(0).max(86_400).optional(),
  FLEETPKI_OCSP_ON_DEMAND_PER_ADDRESS: z.coerce.number().int().min(1).optional(),
  FLEETPKI_OCSP_ON_DEMAND_CONCURRENCY: z.coerce.number().int().min(1).max(16).optional(),
  FLEETPKI_INTENT_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(86_400).optional(),
  FLEETPKI_APPROVAL_LABELS: labels.optional(),
  FLEETPKI_APPROVAL_RETRY_AFTER_S: z.coerce.number().int().min(1).max(3_600).optional(),
  // Their names from when only EST held requests: still read, with the same meaning (every protocol).
  FLEETPKI_EST_APPROVAL_LABELS: labels.optional(),
  FLEETPKI_EST_RETRY_AFTER_S: z.coerce.number().int().min(1).max(3_600).optional(),
  FLEETPKI_CMP_IMPLICIT_CONFIRM: z.enum(['on', 'off']).optional(),
  FLEETPKI_CMP_CONFIRM_WAIT_S: z.coerce.number().int().min(1).max(86_400).optional(),
  FLEETPKI_CMP_MAX_CLOCK_SKEW_S: z.coerce.number().int().min(1).max(86_400).optional(),
  FLEETPKI_CMP_AUTH_BURST: z.coerce.number().int().min(1).max(100_000).optional(),
  FLEETPKI_CMP_AUTH_REFILL_PER_SECOND: z.coerce.number().positive().max(100_000).optional(),
  FLEETPKI_CMP_PBM_THREADS: z.coerce.number().int().min(0).max(16).optional(),
  FLEETPKI_CONSOLE_IDLE_S: z.coerce.number().int().min(30).max(86_400).optional(),
  FLEETPKI_CONSOLE_SESSION_MAX_S: z.coerce.number().int().min(60).max(7 * 86_400).optional(),
  FLEETPKI_CONSOLE_DRILLS: z.enum(['on', 'off']).optional(),
  FLEETPKI_EST_REVOKE_SUPERSEDED_AFTER_S: z.union([z.literal('never'), z.coerce.number().int().min(0).max(365 * 86_400)]).optional(),
  FLEETPKI_APPROVAL_TTL_MINUTES: z.coerce.number().int().min(1).max(7 * 24 * 60).optional(),
  FLEETPKI_API_CONNECTIONS: z.coerce.number().int().min(1).max(500).optional(),
  FLEETPKI_API_RESERVED_CONNECTIONS: z.coerce.number().int().min(1).max(100).optional(),
  FLEETPKI_UPLOAD_CONNECTIONS: z.coerce.number().int().min(1).max(100).optional(),
  FLEETPKI_UPLOADS_PER_MANUFACTURER: z.coerce.number().int().min(1).max(100).optional(),
  FLEETPKI_UPLOAD_IDLE_S: z.coerce.number().int().min(1).max(3_600).optional(),
  FLEETPKI_UPLOAD_PROGRESS_BYTES: z.coerce.number().int().min(1).max(64 * 1024 * 1024).optional(),
  FLEETPKI_UPLOAD_MAX_S: z.coerce.number().int().min(10).max(7 * 86_400).optional(),
  FLEETPKI_DEVICE_KEY_BUNDLES: z.coerce.number().int().min(1).max(64).optional(),
  FLEETPKI_DEVICE_KEY_BUNDLE_MAX_S: z.coerce.number().int().min(1).max(86_400).optional(),
  ...tlsEnvSchema,
});
export type ParsedEnv = z.infer<typeof envSchema>;
export type FleetEnv = Record<string, string | undefined>;
type Variable = keyof ParsedEnv;

const onOff = (v: unknown): boolean => v === 'on';
const list = (v: unknown): string[] => String(v).split(',').filter(Boolean);

/** The variables that stand for one key of the file each (the others are below, in overlayEnv). */
const SINGLE_KEYS: readonly (readonly [Variable, string, ((v: unknown) => unknown)?])[] = [
  ['FLEETPKI_STATE_DIR', 'paths.state', (v) => resolve(String(v))],
  ['FLEETPKI_DEPLOYMENT_DIR', 'paths.deployment', (v) => resolve(String(v))],
  ['FLEETPKI_SITE', 'this.site'],
  ...SITE_IDS.flatMap((id) => (['PG:postgres', 'REDIS:redis', 'API:api', 'STATUS:status', 'PATRONI:patroni'] as const).map((pair) => {
    const [variable, part] = pair.split(':') as [string, string];
    return [`FLEETPKI_${variable}_PORT_${id.toUpperCase()}` as Variable, `sites.${id}.${part}.port`] as const;
  })),
  ...SITE_IDS.map((id) => [`FLEETPKI_STATUS_HTTP_PORT_${id.toUpperCase()}` as Variable, `sites.${id}.status.httpPort`] as const),
  ['FLEETPKI_LOG_LEVEL', 'log.level'],
  ['FLEETPKI_PG_USER', 'database.owner'],
  ['FLEETPKI_PG_DATABASE', 'database.name'],
  ['FLEETPKI_DATABASE_HA', 'database.ha'],
  ['FLEETPKI_CRL_BASE_URL', 'crl.baseUrl'],
  ['FLEETPKI_DUAL_CONTROL_REVOCATIONS', 'dualControl.revocationThreshold'],
  ['FLEETPKI_DUAL_CONTROL_WINDOW_MINUTES', 'dualControl.revocationWindowMinutes'],
  ['FLEETPKI_APPROVAL_TTL_MINUTES', 'dualControl.approvalTtlMinutes'],
  ['FLEETPKI_API_HOST', 'api.host'],
  ['FLEETPKI_API_TLS', 'api.tls', onOff],
  ['FLEETPKI_RATE_LIMIT_PER_MINUTE', 'api.rateLimitPerMinute'],
  ['FLEETPKI_AUTH_FAILURES_PER_MINUTE', 'api.failedAuthPerMinute'],
  ['FLEETPKI_API_CONNECTIONS', 'api.connections'],
  ['FLEETPKI_API_RESERVED_CONNECTIONS', 'api.reservedConnections'],
  ['FLEETPKI_SITE_LEASE_MS', 'siteLease.leaseMs'],
  ['FLEETPKI_WRITE_WAIT_MS', 'writeWaitMs'],
  ['FLEETPKI_SIGNING_THREADS', 'signing.threads'],
  ['FLEETPKI_SIGNATURE_CHECK', 'signing.check'],
  ['FLEETPKI_POSSESSION_THREADS', 'possessionThreads'],
  ['FLEETPKI_OCSP_MAX_AGE_SECONDS', 'ocsp.maxAgeSeconds'],
  ['FLEETPKI_OCSP_ON_DEMAND_PER_ADDRESS', 'ocsp.onDemand.perAddressPerSecond'],
  ['FLEETPKI_OCSP_ON_DEMAND_CONCURRENCY', 'ocsp.onDemand.concurrency'],
  ['FLEETPKI_INTENT_TIMEOUT_SECONDS', 'intentTimeoutSeconds'],
  ['FLEETPKI_CMP_IMPLICIT_CONFIRM', 'cmp.implicitConfirm', onOff],
  ['FLEETPKI_CMP_CONFIRM_WAIT_S', 'cmp.confirmWaitSeconds'],
  ['FLEETPKI_CMP_MAX_CLOCK_SKEW_S', 'cmp.maxClockSkewSeconds'],
  ['FLEETPKI_CMP_AUTH_BURST', 'cmp.authBudget.burst'],
  ['FLEETPKI_CMP_AUTH_REFILL_PER_SECOND', 'cmp.authBudget.refillPerSecond'],
  ['FLEETPKI_CMP_PBM_THREADS', 'cmp.pbmThreads'],
  ['FLEETPKI_CONSOLE_IDLE_S', 'console.idleSeconds'],
  ['FLEETPKI_CONSOLE_SESSION_MAX_S', 'console.maxAgeSeconds'],
  ['FLEETPKI_CONSOLE_DRILLS', 'console.drills', onOff],
  ['FLEETPKI_EST_REVOKE_SUPERSEDED_AFTER_S', 'est.revokeSupersededAfterSeconds'],
  ['FLEETPKI_UPLOAD_CONNECTIONS', 'uploads.connections'],
  ['FLEETPKI_UPLOADS_PER_MANUFACTURER', 'uploads.perManufacturer'],
  ['FLEETPKI_UPLOAD_IDLE_S', 'uploads.idleSeconds'],
  ['FLEETPKI_UPLOAD_PROGRESS_BYTES', 'uploads.progressBytes'],
  ['FLEETPKI_UPLOAD_MAX_S', 'uploads.maxSeconds'],
  ['FLEETPKI_DEVICE_KEY_BUNDLES', 'deviceKeyBundles.concurrency'],
  ['FLEETPKI_DEVICE_KEY_BUNDLE_MAX_S', 'deviceKeyBundles.maxSeconds'],
];

const refuse = (message: string) => new FleetError('CONFIG_INVALID', `invalid configuration: ${message}`);

/** Validates the variables on their own terms, naming the variable in what is wrong. */
export function parseEnv(env: FleetEnv): ParsedEnv {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message} (got ${JSON.stringify(env[String(issue.path[0])])})`);
    throw new FleetError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, { details: { problems } });
  }
  const e = parsed.data;
  const urlDatabase = e.FLEETPKI_DATABASE_URL ? decodeURIComponent(new URL(e.FLEETPKI_DATABASE_URL).pathname.replace(/^\//, '')) : undefined;
  if (urlDatabase !== undefined && !/^[a-z_][a-z0-9_]*$/.test(urlDatabase)) throw refuse(`FLEETPKI_DATABASE_URL must name a database (lower-case letters, digits, _), got "${urlDatabase}"`);
  if (urlDatabase && e.FLEETPKI_PG_DATABASE && urlDatabase !== e.FLEETPKI_PG_DATABASE) {
    throw refuse(`FLEETPKI_DATABASE_URL names database "${urlDatabase}" but FLEETPKI_PG_DATABASE is "${e.FLEETPKI_PG_DATABASE}"; set one of them`);
  }
  return e;
}

/** A setting that was renamed: its new name or its old one, never two different values. */
function renamedSetting<K extends Variable>(e: ParsedEnv, name: K, oldName: Variable): ParsedEnv[K] | undefined {
  const value = e[name];
  const old = e[oldName] as ParsedEnv[K] | undefined;
  if (value !== undefined && old !== undefined && value !== old) throw refuse(`${String(name)} and its old name ${String(oldName)} are both set, differently; keep ${String(name)}`);
  return value ?? old;
}

type Doc = Record<string, unknown>;
const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

function child(doc: Doc, key: string): Doc {
  if (!isObject(doc[key])) doc[key] = {};
  return doc[key] as Doc;
}

function setKey(doc: Doc, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = doc;
  for (const key of keys.slice(0, -1)) at = child(at, key);
  at[keys.at(-1)!] = value;
}

function deleteKey(doc: Doc, path: string): void {
  const keys = path.split('.');
  let at: unknown = doc;
  for (const key of keys.slice(0, -1)) at = isObject(at) ? at[key] : undefined;
  if (isObject(at)) delete at[keys.at(-1)!];
}

/** A URL with another host and/or port (an etcd member's, moved by a variable). */
function withPlace(url: unknown, fallbackHost: string, place: { host?: string; port?: number }, defaultPort: number, scheme: 'http' | 'https'): string {
  const u = new URL(typeof url === 'string' && URL.canParse(url) ? url : `${scheme}://${fallbackHost}:${defaultPort}`);
  // Written out, not through URL's setters, which ignore a port out of range: the schema must see it.
  return `${u.protocol}//${place.host ?? u.hostname}:${place.port ?? (u.port || defaultPort)}`;
}

/**
 * Lays the variables over the file's document (a copy): each names one key, and wins over it. Returns
 * the document and, for each key a variable set, the variable (so an error names both).
 */
export function overlayEnv(file: Doc, e: ParsedEnv): { doc: Doc; fromEnv: Map<string, string> } {
  const doc = structuredClone(file);
  const fromEnv = new Map<string, string>();
  const set = (variable: string, path: string, value: unknown) => {
    setKey(doc, path, value);
    fromEnv.set(path, variable);
  };
  for (const [variable, path, convert] of SINGLE_KEYS) {
    const value = e[variable];
    if (value !== undefined) set(variable, path, convert ? convert(value) : value);
  }
  overlayTlsEnv(doc, e, set);
  // The process's own site: the environment's, the file's, or a.
  const fileSite = isObject(doc.this) ? doc.this.site : undefined;
  const own: SiteId | undefined = SITE_IDS.find((id) => id === fileSite) ?? (fileSite === undefined ? 'a' : undefined);
  // Variables that speak of "this process's site" apply to that site's keys only.
  if (own) {
    if (e.FLEETPKI_DATABASE_URL) set('FLEETPKI_DATABASE_URL', `sites.${own}.postgres.url`, e.FLEETPKI_DATABASE_URL);
    if (e.FLEETPKI_SERVICE_DATABASE_URL) set('FLEETPKI_SERVICE_DATABASE_URL', `sites.${own}.postgres.serviceUrl`, e.FLEETPKI_SERVICE_DATABASE_URL);
    if (e.FLEETPKI_REDIS_URL) set('FLEETPKI_REDIS_URL', `sites.${own}.redis.url`, e.FLEETPKI_REDIS_URL);
    if (e.FLEETPKI_HSM_PIN_FILE) set('FLEETPKI_HSM_PIN_FILE', `hsm.${own}.pin`, resolve(e.FLEETPKI_HSM_PIN_FILE));
  }
  // The URL's database is the database, unless FLEETPKI_PG_DATABASE says the same (parseEnv checked).
  if (e.FLEETPKI_DATABASE_URL && !e.FLEETPKI_PG_DATABASE) set('FLEETPKI_DATABASE_URL', 'database.name', decodeURIComponent(new URL(e.FLEETPKI_DATABASE_URL).pathname.slice(1)));
  // One module for every site's token, as before there was a file.
  if (e.FLEETPKI_PKCS11_MODULE) for (const id of SITE_IDS) set('FLEETPKI_PKCS11_MODULE', `hsm.${id}.modulePath`, resolve(e.FLEETPKI_PKCS11_MODULE));
  // The prefix names every token of the deployment: labels the file gives yield to it.
  if (e.FLEETPKI_HSM_TOKEN_PREFIX) {
    set('FLEETPKI_HSM_TOKEN_PREFIX', 'hsm.tokenPrefix', e.FLEETPKI_HSM_TOKEN_PREFIX);
    for (const id of SITE_IDS) deleteKey(doc, `hsm.${id}.token.label`);
    deleteKey(doc, 'hsm.root.tokenLabel');
  }
  const simDoc = isObject(doc.simulation) ? doc.simulation : {};
  const netns = { netns: e.FLEETPKI_NETNS !== undefined ? e.FLEETPKI_NETNS === 'on' : simDoc.netns === true, subnet: typeof simDoc.subnet === 'string' ? simDoc.subnet : undefined };
  // Where the simulation puts every part: the file's hosts yield to it.
  if (e.FLEETPKI_NETNS !== undefined) {
    set('FLEETPKI_NETNS', 'simulation.netns', netns.netns);
    for (const id of SITE_IDS) {
      deleteKey(doc, `sites.${id}.host`);
      for (const part of ['postgres', 'redis', 'api', 'status']) deleteKey(doc, `sites.${id}.${part}.host`);
    }
  }
  // A member the file does not place gets the scheme its TLS settings call for (a port variable must
  // not turn an https deployment's member into http, which the schema then refuses).
  const tlsDoc = isObject(doc.tls) ? doc.tls : {};
  const clientScheme = tlsDoc.etcd !== undefined ? 'https' : 'http';
  const peerScheme = tlsDoc.etcdPeer !== undefined ? 'https' : 'http';
  const etcdPorts: Record<EtcdMemberName, number | undefined> = { a: e.FLEETPKI_ETCD_PORT_A, b: e.FLEETPKI_ETCD_PORT_B, witness: e.FLEETPKI_ETCD_PORT_WITNESS };
  for (const name of ['a', 'b', 'witness'] as const) {
    const port = etcdPorts[name];
    const host = e.FLEETPKI_NETNS !== undefined ? simulatedHost(name, netns) : undefined;
    if (port === undefined && host === undefined) continue;
    const variable = port !== undefined ? `FLEETPKI_ETCD_PORT_${name.toUpperCase()}` : 'FLEETPKI_NETNS';
    const member = child(child(child(doc, 'etcd'), 'members'), name);
    const fallback = simulatedHost(name, netns);
    const defaultPort = DEFAULT_ETCD_PORTS[name];
    // Only a member the file or a variable places is written: the defaults fill in the rest.
    if (port !== undefined || member.clientUrl !== undefined) set(variable, `etcd.members.${name}.clientUrl`, withPlace(member.clientUrl, fallback, { ...(host ? { host } : {}), ...(port ? { port } : {}) }, defaultPort, clientScheme));
    if (port !== undefined || member.peerUrl !== undefined) set(variable, `etcd.members.${name}.peerUrl`, withPlace(member.peerUrl, fallback, { ...(host ? { host } : {}), ...(port ? { port: port + 1 } : {}) }, defaultPort + 1, peerScheme));
  }
  const holdLabels = renamedSetting(e, 'FLEETPKI_APPROVAL_LABELS', 'FLEETPKI_EST_APPROVAL_LABELS');
  if (holdLabels !== undefined) set(e.FLEETPKI_APPROVAL_LABELS !== undefined ? 'FLEETPKI_APPROVAL_LABELS' : 'FLEETPKI_EST_APPROVAL_LABELS', 'enrolmentHolds.labels', list(holdLabels));
  const retryAfter = renamedSetting(e, 'FLEETPKI_APPROVAL_RETRY_AFTER_S', 'FLEETPKI_EST_RETRY_AFTER_S');
  if (retryAfter !== undefined) set(e.FLEETPKI_APPROVAL_RETRY_AFTER_S !== undefined ? 'FLEETPKI_APPROVAL_RETRY_AFTER_S' : 'FLEETPKI_EST_RETRY_AFTER_S', 'enrolmentHolds.retryAfterSeconds', retryAfter);
  return { doc, fromEnv };
}

/** etcd client ports of the local simulation's members when nothing names them (each peer port is the next). */
export const DEFAULT_ETCD_PORTS: Readonly<Record<EtcdMemberName, number>> = { a: 12379, b: 12381, witness: 12383 };
