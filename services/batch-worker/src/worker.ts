import pino from 'pino';
import type { FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, SiteGuard, SiteLease, batchOutboxReconciler, loadSiteIssuer, postgresBatchOutboxStore } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { PossessionThreads } from '@fleetpki/x509';
import { ChunkQueue, startChunkWorker } from '@fleetpki/queue';
// Only the pool's opening: the shared site start-up (issue 37, openSiteRuntime) is to take it.
import { openServicePool } from '@fleetpki/store';

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
  const pool = await openServicePool(config, 'worker', 6);
  const keyStore = await openSiteKeyStore(config, site, { sessions: options.hsmSessions ?? 4, signingThreads: config.signing.threads });
  const lease = new SiteLease(config, site.id, site.serviceDatabaseUrls.worker);
  const possession = PossessionThreads.start(config.possessionThreads);
  let closing = false;
  try {
    await lease.start();
    const { ca, serialPrefix } = await loadSiteIssuer(config, pool, keyStore);
    const guard = new SiteGuard(pool, config, lease);
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
    let timer: NodeJS.Timeout | undefined;
    const reconcile = async () => {
      try {
        if (await guard.canAct()) await outbox.pass();
      } catch (err) {
        log.warn({ err: { message: (err as Error).message } }, 'reconciler pass failed; next pass retries');
      }
      if (!closing) timer = setTimeout(reconcile, outbox.everyMs);
    };
    if (options.reconcile ?? true) await reconcile();

    return {
      async close() {
        closing = true;
        if (timer) clearTimeout(timer);
        await worker.close();
        await queue.close();
        await lease.close();
        await possession.close();
        await keyStore.close();
        await pool.end();
      },
    };
  } catch (err) {
    await lease.close();
    await possession.close();
    await keyStore.close();
    await pool.end();
    throw err;
  }
}
