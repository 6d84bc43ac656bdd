import pino from 'pino';
import type { FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, openSiteRuntime } from '@fleetpki/ca';
import { PossessionThreads } from '@fleetpki/x509';
import { assertRedisLink, redisLink, startChunkWorker } from '@fleetpki/queue';

export interface BatchWorkerOptions {
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
  // Pool, lease, guard, HSM and issuing CA, opened in order and closed in reverse (site.close()).
  const runtime = await openSiteRuntime(config, { service: 'worker', pool: { max: 6 }, hsm: { sessions: options.hsmSessions ?? 4, signingThreads: config.signing.threads } });
  const { pool, guard } = runtime;
  const { ca, serialPrefix } = runtime.issuer;
  const possession = PossessionThreads.start(config.possessionThreads);
  let closing = false;
  try {
    const issuer = ChunkIssuer.forPool(pool, ca, config.site, serialPrefix, possession);
    // A wrong Redis password or CA stops the worker at start; Redis merely down is waited for by BullMQ.
    const link = redisLink(config, site, 'batch-worker');
    await assertRedisLink(link);
    const worker = startChunkWorker(
      link,
      config.pgDatabase,
      async (job) => {
        await guard.assertWritable();
        const outcome = await issuer.attempt(job.batchId, job.chunkNo);
        log.debug({ ...job, ...outcome }, 'chunk done');
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
        await worker.close();
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
