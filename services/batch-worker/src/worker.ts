import pino from 'pino';
import type { FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, openSiteRuntime, postgresBatchHealthStore } from '@fleetpki/ca';
import { observeHsm } from '@fleetpki/hsm';
import { batchQueueMetrics, batchWorkMetrics, hsmMetrics, issuanceMetrics, leaseMetrics, processRegistry, scraperList, serveMetrics } from '@fleetpki/metrics';
import { PossessionThreads } from '@fleetpki/x509';
import { assertRedisLink, ChunkQueue, redisLink, startChunkWorker } from '@fleetpki/queue';

export interface BatchWorkerOptions {
  /** The metrics listener's port (docs/metrics.md); none when undefined. */
  readonly metricsPort?: number;
  /** Chunks in flight in this process (one signs while another commits). */
  readonly concurrency?: number;
  readonly hsmSessions?: number;
}

export interface BatchWorker {
  close(): Promise<void>;
}

/**
 * A batch worker process: takes chunk jobs from the site's queue and issues them (ChunkIssuer.attempt),
 * and nothing else. Chunks lost with Redis or with a killed worker are queued again by the daemons'
 * batch-outbox job (services/daemons). Nothing is signed while the site is a standby.
 */
export async function startBatchWorker(config: FleetConfig, options: BatchWorkerOptions = {}): Promise<BatchWorker> {
  const log = pino({ name: `batch-worker-${config.site}`, level: config.logLevel });
  const site = config.sites[config.site];
  // Before the HSM opens, so its first operations are counted.
  const registry = processRegistry('batch-worker', config.site);
  observeHsm(hsmMetrics(registry));
  // Pool, lease, guard, HSM and issuing CA, opened in order and closed in reverse (site.close()).
  const runtime = await openSiteRuntime(config, { service: 'worker', pool: { max: 6 }, hsm: { sessions: options.hsmSessions ?? 4, signingThreads: config.signing.threads } });
  const { pool, guard } = runtime;
  const { ca, serialPrefix } = runtime.issuer;
  const possession = PossessionThreads.start(config.possessionThreads);
  let closing = false;
  try {
    // A wrong Redis password or CA stops the worker at start; Redis merely down is waited for by BullMQ.
    const link = redisLink(config, site, 'batch-worker');
    await assertRedisLink(link);
    const issuance = issuanceMetrics(registry);
    const queue = new ChunkQueue(link, config.pgDatabase);
    const health = postgresBatchHealthStore(pool);
    batchQueueMetrics(registry, async () => ({ jobs: await queue.counts(), workers: await queue.workers(), oldestUnfinishedChunkSeconds: await health.oldestUnfinishedChunkSeconds() }));
    const batch = batchWorkMetrics(registry);
    leaseMetrics(registry, () => runtime.lease.state());
    const issuer = ChunkIssuer.forPool(pool, ca, config.site, serialPrefix, possession, { ...issuance, chunkDone: (n) => batch.chunkDone(n) });
    // Issuing matters more than the worker's figures: a port taken is logged (and `up` shows the scrape failing).
    const server = options.metricsPort === undefined ? undefined : await serveMetrics(registry, site.host, options.metricsPort, undefined, scraperList(site.metrics.scrapers)).catch((err: unknown) => {
      log.error({ code: 'METRICS_LISTEN_FAILED', port: options.metricsPort, err: { message: (err as Error).message } }, 'the metrics listener could not start; the worker runs without it');
      return undefined;
    });
    const worker = startChunkWorker(
      link,
      config.pgDatabase,
      async (job) => {
        await guard.assertWritable();
        const outcome = await issuer.attempt(job.batchId, job.chunkNo);
        log.info({ ...job, ...outcome }, 'chunk done');
      },
      {
        concurrency: options.concurrency ?? 2,
        onError: (err, job) => {
          if (!closing) log.warn({ err: { message: err.message }, job }, 'chunk attempt failed; it will be retried');
        },
      },
    );
    return {
      async close() {
        closing = true;
        server?.close();
        await worker.close();
        await queue.close();
        await possession.close();
        await runtime.close();
      },
    };
  } catch (err) {
    await possession.close();
    await runtime.close();
    throw err;
  }
}
