import { runService } from '@fleetpki/core';
import { startBatchWorker } from './worker.js';

// Thin entry point. FLEETPKI_WORKER_CONCURRENCY chunks in flight; FLEETPKI_WORKER_RECONCILE=0 turns the
// reconciler off in this process (when several workers run, one reconciler per site is enough).
await runService('batch-worker', (config) =>
  startBatchWorker(config, {
    concurrency: Number(process.env.FLEETPKI_WORKER_CONCURRENCY ?? 2),
    reconcile: process.env.FLEETPKI_WORKER_RECONCILE !== '0',
  }),
);
