import pino from 'pino';
import { isFleetError, type FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, openSiteRuntime } from '@fleetpki/ca';
import { PossessionThreads } from '@fleetpki/x509';
import { ChunkQueue, startChunkWorker } from '@fleetpki/queue';
import { completeFinishedBatches, listUnfinishedChunks, noteChunkError } from '@fleetpki/store';

export interface BatchWorkerOptions {
  /** Chunks in flight in this process (one signs while another commits). */
  readonly concurrency?: number;
  readonly hsmSessions?: number;
  /** Run the reconciler in this process (one per site is enough; more are harmless). */
  readonly reconcile?: boolean;
  readonly reconcileEveryMs?: number;
}

export interface BatchWorker {
  close(): Promise<void>;
}

/**
 * A batch worker process: takes chunk jobs from the site's queue and issues them (ChunkIssuer), and
 * runs the reconciler that queues every unfinished chunk from PostgreSQL (the outbox), so a lost Redis
 * or a killed worker only delays work. Nothing is signed while the site is a standby.
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
    const worker = startChunkWorker(
      site.redisUrl,
      config.pgDatabase,
      async (job) => {
        await guard.assertWritable();
        try {
          const outcome = await issuer.issue(job.batchId, job.chunkNo);
          log.debug({ ...job, ...outcome }, 'chunk done');
        } catch (err) {
          await noteChunkError(pool, job.batchId, job.chunkNo, isFleetError(err) ? `${err.code}: ${err.message}` : String(err)).catch(() => undefined);
          throw err;
        }
      },
      {
        concurrency: options.concurrency ?? 2,
        onError: (err, job) => {
          if (!closing) log.warn({ err: { message: err.message }, job }, 'chunk attempt failed; it will be retried');
        },
      },
    );

    const queue = new ChunkQueue(site.redisUrl, config.pgDatabase);
    let timer: NodeJS.Timeout | undefined;
    const reconcile = async () => {
      try {
        if (await guard.canAct()) {
          await queue.enqueue(await listUnfinishedChunks(pool, 10_000));
          await completeFinishedBatches(pool);
        }
      } catch (err) {
        log.warn({ err: { message: (err as Error).message } }, 'reconciler pass failed; next pass retries');
      }
      if (!closing) timer = setTimeout(reconcile, options.reconcileEveryMs ?? 1_000);
    };
    if (options.reconcile ?? true) await reconcile();

    return {
      async close() {
        closing = true;
        if (timer) clearTimeout(timer);
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
