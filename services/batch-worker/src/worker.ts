import pino from 'pino';
import { Daemon, type FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, batchOutboxReconciler, openSiteRuntime, postgresBatchOutboxStore } from '@fleetpki/ca';
import { PossessionThreads } from '@fleetpki/x509';
import { ChunkQueue, startChunkWorker } from '@fleetpki/queue';

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
 * A batch worker process: takes chunk jobs from the site's queue and issues them (ChunkIssuer.attempt),
 * and, for now, runs issuance's outbox reconciler (batchOutboxReconciler), so a lost Redis or a killed
 * worker only delays work. Nothing is signed while the site is a standby.
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

    const queue = new ChunkQueue(site.redisUrl, config.pgDatabase);
    // The outbox reconciler is issuance's (a DaemonJob); this process runs it, on the active site only,
    // until the daemon runner does.
    const outbox = batchOutboxReconciler({ store: postgresBatchOutboxStore(pool), queue }, { everyMs: options.reconcileEveryMs ?? 1_000 });
    const reconciler = new Daemon(outbox, { mayRun: () => guard.canAct(), log });
    if (options.reconcile ?? true) {
      await reconciler.runOnce();
      reconciler.start();
    }

    return {
      async close() {
        closing = true;
        await reconciler.stop();
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
