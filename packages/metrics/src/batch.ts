import { Counter, type Registry } from 'prom-client';
import { collectedGauge } from './collected-gauge.js';
import { readFailures, sharedRead } from './scrape-read.js';

/** What is read at a scrape: the site's queue (BullMQ) and the oldest unfinished chunk (PostgreSQL). */
export interface BatchFigures {
  readonly jobs: { readonly waiting: number; readonly active: number; readonly delayed: number; readonly failed: number };
  readonly workers: number;
  readonly oldestUnfinishedChunkSeconds: number;
}

/**
 * The site's batch pipeline (docs/metrics.md, Batch): its queue by state, the workers taking from it
 * and the oldest unfinished chunk. The workers export it, and so do the daemons (whose batch outbox
 * fills the queue): with every worker gone, the daemons still say that nobody takes the jobs.
 */
export function batchQueueMetrics(registry: Registry, read: () => Promise<BatchFigures>): void {
  const figures = sharedRead(read);
  collectedGauge(registry, 'fleetpki_batch_queue_jobs', "Chunk jobs in the site's queue, by state", ['state'], async (set) => {
    const f = await figures.get();
    if (f) for (const [state, n] of Object.entries(f.jobs)) set({ state }, n);
  });
  collectedGauge(registry, 'fleetpki_batch_workers_connected', "Workers taking jobs from the site's queue", [], async (set) => {
    const f = await figures.get();
    if (f) set({}, f.workers);
  });
  collectedGauge(registry, 'fleetpki_batch_oldest_unfinished_chunk_seconds', 'Age of the oldest chunk of a batch not yet done (0 when none)', [], async (set) => {
    const f = await figures.get();
    if (f) set({}, f.oldestUnfinishedChunkSeconds);
  });
  readFailures(registry, figures);
}

/** A worker's own work: chunks finished and certificates stored (rate: certificates/s). */
export function batchWorkMetrics(registry: Registry): { chunkDone(certificates: number): void } {
  const registers = [registry];
  const chunks = new Counter({ name: 'fleetpki_batch_chunks_done_total', help: 'Chunks this worker finished', registers });
  const certificates = new Counter({ name: 'fleetpki_batch_certificates_total', help: 'Certificates this worker stored (rate: certificates/s)', registers });
  return {
    chunkDone(n) {
      chunks.inc();
      certificates.inc(n);
    },
  };
}
