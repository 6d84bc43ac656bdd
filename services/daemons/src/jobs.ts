import { CrlPublisher, OcspPreProducer, OcspRefresher, auditCheckpointFile, auditSealerJob, crlPublisherJob, ocspPreProducerJob, ocspRefresherJob, type StatusSite } from '@fleetpki/ca';
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

/** What a job factory gets: the site's configuration and what the status processes open (site.pool, site.store, site.ca, ...). */
export interface JobContext {
  readonly config: FleetConfig;
  readonly site: StatusSite;
  readonly status: StatusProducers;
  /** The pause between passes when not the job's own (tests and benchmarks shorten it). */
  readonly everyMs: number | undefined;
  readonly log: { warn(details: object, message: string): void; info(details: object, message: string): void };
}

/** A job of the site, or undefined when this site cannot run it (no CA key in its HSM). */
export type JobFactory = (context: JobContext) => DaemonJob | undefined;

/**
 * Every background job of a site, one line each (Boulder's one daemon per job); `--only` selects among
 * them by name. A reconciler joins with one more line here.
 */
export const JOBS: Readonly<Record<string, JobFactory>> = {
  'crl-publisher': ({ status, everyMs }) => status.publisher && crlPublisherJob(status.publisher, everyMs),
  'ocsp-preproducer': ({ status, everyMs }) => status.preProducer && ocspPreProducerJob(status.preProducer, everyMs),
  'ocsp-refresher': ({ status, everyMs }) => status.refresher && ocspRefresherJob(status.refresher, everyMs),
  'audit-sealer': ({ config, site, log }) => auditSealerJob({ pool: site.pool, keyStore: site.keyStore, site: config.site, checkpointFile: auditCheckpointFile(config.deploymentDir), actor: `daemons:${config.site}`, log }),
};
