import { isFleetError, loadConfig } from '@fleetpki/core';
import { startBatchWorker } from './worker.js';

// Thin entry point. FLEETPKI_WORKER_CONCURRENCY chunks in flight; FLEETPKI_WORKER_RECONCILE=0 turns the
// reconciler off in this process (when several workers run, one reconciler per site is enough).
try {
  const config = loadConfig();
  const worker = await startBatchWorker(config, {
    concurrency: Number(process.env.FLEETPKI_WORKER_CONCURRENCY ?? 2),
    reconcile: process.env.FLEETPKI_WORKER_RECONCILE !== '0',
  });
  const stop = async () => {
    await worker.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (err) {
  console.error(isFleetError(err) ? `batch-worker: ${err.code}: ${err.message}` : err);
  process.exit(1);
}
