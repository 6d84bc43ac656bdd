import {
  CrlPublisher,
  OcspPreProducer,
  OcspRefresher,
  RevocationService,
  StaleIntentRelease,
  auditCheckpointFile,
  auditSealerJob,
  batchOutboxReconciler,
  cmpConfirmExpiry,
  crlPublisherJob,
  estSupersededRevoker,
  ocspPreProducerJob,
  ocspRefresherJob,
  onlineIntentReconciler,
  postgresBatchOutboxStore,
  postgresCmpStore,
  postgresEnrolmentStore,
  postgresStatusStore,
  postgresSupersededStore,
  type ChunkJobQueue,
  type RoleSiteRuntime,
  type StatusSite,
} from '@fleetpki/ca';
import type { DaemonJob, FleetConfig } from '@fleetpki/core';

/** The status capability's producers of this site, built once (tests and scripts drive them directly too). */
export interface StatusProducers {
  /** Undefined without the CA key in this site's HSM. */
  readonly publisher: CrlPublisher | undefined;
  readonly preProducer: OcspPreProducer | undefined;
  readonly refresher: OcspRefresher | undefined;
}

export function statusProducers(config: FleetConfig, site: StatusSite): StatusProducers {
  return {
    publisher: site.ca ? new CrlPublisher(site.store, site.ca, config.crlBaseUrl) : undefined,
    preProducer: site.signing ? new OcspPreProducer(site.store, site.caId, site.signing, site.canAct) : undefined,
    refresher: site.signing ? new OcspRefresher(site.store, site.caId, site.signing, site.canAct) : undefined,
  };
}

/** The status processes' site (status role, CA key when this site's HSM has it) and its producers. */
export interface StatusJobSite {
  readonly site: StatusSite;
  readonly status: StatusProducers;
}

/**
 * The database role a job works as, and so what the daemons open for it: `status` the status site
 * (pool, lease, CA key), `issuer` and `worker` a small pool of that role with the lease and no HSM
 * (RoleSiteRuntime). Each role is opened once, and only when a selected job needs it.
 */
export type JobRole = 'status' | 'issuer' | 'worker';

/** What a job factory gets besides its site: the configuration, the pause, a log, the chunk queue. */
export interface JobContext {
  readonly config: FleetConfig;
  /** The pause between passes when not the job's own (tests and benchmarks shorten it). */
  readonly everyMs: number | undefined;
  /** Who the audit rows of the jobs name: `daemons:<site>`. */
  readonly actor: string;
  readonly log: { warn(details: object, message: string): void; info(details: object, message: string): void };
  /** The site's chunk queue (Redis), opened on first use and closed with the daemons. */
  queue(): ChunkJobQueue;
}

/** A job of the site, or undefined when this site cannot run it (no CA key in its HSM, or turned off in the configuration). */
export type JobSpec =
  | { readonly role: 'status'; make(context: JobContext, site: StatusJobSite): DaemonJob | undefined }
  | { readonly role: 'issuer' | 'worker'; make(context: JobContext, site: RoleSiteRuntime): DaemonJob | undefined };

const status = (make: (context: JobContext, site: StatusJobSite) => DaemonJob | undefined): JobSpec => ({ role: 'status', make });
const issuer = (make: (context: JobContext, site: RoleSiteRuntime) => DaemonJob | undefined): JobSpec => ({ role: 'issuer', make });
const worker = (make: (context: JobContext, site: RoleSiteRuntime) => DaemonJob | undefined): JobSpec => ({ role: 'worker', make });

/**
 * The reconcilers' pause: a quarter of the intent timeout, between 1 and 10 s (what the issuer API
 * used when it ran them).
 */
export function reconcileEveryMs(config: FleetConfig): number {
  return Math.max(1_000, Math.min(10_000, config.intentTimeoutSeconds * 250));
}

/**
 * Every background job of a site, one line each (Boulder's one daemon per job), with the database role
 * it works as (least privilege: the grants of migrations/0016 and later); `--only` selects among them by
 * name, and the registry name is the job's name in metrics and logs.
 */
export const JOBS: Readonly<Record<string, JobSpec>> = {
  'crl-publisher': status((c, { status }) => status.publisher && crlPublisherJob(status.publisher, c.everyMs)),
  'ocsp-preproducer': status((c, { status }) => status.preProducer && ocspPreProducerJob(status.preProducer, c.everyMs)),
  'ocsp-refresher': status((c, { status }) => status.refresher && ocspRefresherJob(status.refresher, c.everyMs)),
  'audit-sealer': status(({ config, actor, log }, { site }) => auditSealerJob({ pool: site.pool, keyStore: site.keyStore, site: config.site, checkpointFile: auditCheckpointFile(config.deploymentDir), actor, log })),
  // Issuance's and the protocols' reconcilers, none of which signs: a small pool of the role whose grants they use.
  'batch-outbox': worker((c, { pool }) => batchOutboxReconciler({ store: postgresBatchOutboxStore(pool), queue: c.queue() }, c.everyMs !== undefined ? { everyMs: c.everyMs } : {})),
  'online-intents': issuer(({ config, actor, everyMs, log }, { pool }) =>
    onlineIntentReconciler(new StaleIntentRelease(postgresEnrolmentStore(pool), config.site, config.intentTimeoutSeconds), { actor, everyMs: everyMs ?? reconcileEveryMs(config), onReleased: (released) => log.warn({ released }, 'released online intents that never got their certificate') }),
  ),
  'cmp-confirm-expiry': issuer(({ config, actor, everyMs, log }, { pool }) =>
    cmpConfirmExpiry({ store: postgresCmpStore(pool, config.site), confirmWaitSeconds: config.cmp.confirmWaitSeconds, actor, everyMs: everyMs ?? reconcileEveryMs(config), onExpired: (unconfirmed) => log.warn({ unconfirmed }, 'CMP certificates answered but never confirmed (certConf); audited, the certificates stay valid') }),
  ),
  'est-superseded': issuer(({ config, actor, everyMs, log }, { pool }) => {
    const graceSeconds = config.est.revokeSupersededAfterSeconds;
    if (graceSeconds === null) return undefined;
    const revocations = new RevocationService(postgresStatusStore(pool), config.site);
    return estSupersededRevoker({ store: postgresSupersededStore(pool), revocations, graceSeconds, actor, everyMs: everyMs ?? reconcileEveryMs(config), onRevoked: (revoked) => log.info({ revoked, graceSeconds }, 'revoked certificates superseded by re-enrolment') });
  }),
};

/** The status side's jobs (CRLs, OCSP, audit seals): what createStatusSite in tests runs by default. */
export const STATUS_JOBS = Object.keys(JOBS).filter((n) => JOBS[n]!.role === 'status');
/** The reconcilers. */
export const RECONCILERS = Object.keys(JOBS).filter((n) => JOBS[n]!.role !== 'status');

/** The roles the named jobs work as, in registry order: what the daemons open for them. */
export function rolesOf(names: readonly string[]): JobRole[] {
  return [...new Set(Object.keys(JOBS).filter((n) => names.includes(n)).map((n) => JOBS[n]!.role))];
}
