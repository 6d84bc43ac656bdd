import { FleetError, MAX_WORKER_INSTANCES, runService } from '@fleetpki/core';
import { metricsPort } from '@fleetpki/metrics';
import { startBatchWorker } from './worker.js';

/**
 * Instance N of fleetpki-batch-worker@N (FLEETPKI_WORKER_INSTANCE) takes sites.<id>.metrics.worker + N - 1,
 * so the instances of one host do not contend for one port.
 */
function workerMetricsPort(configured: number | undefined): number | undefined {
  const instance = process.env.FLEETPKI_WORKER_INSTANCE;
  if (configured === undefined || instance === undefined || instance === '') return metricsPort(configured);
  const n = Number(instance);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKER_INSTANCES) throw new FleetError('CONFIG_INVALID', `invalid configuration: FLEETPKI_WORKER_INSTANCE "${instance}" must be the instance number 1 to ${MAX_WORKER_INSTANCES} (fleetpki-batch-worker@N; their metrics ports are kept free from sites.<id>.metrics.worker on)`);
  return metricsPort(configured + n - 1);
}

// Thin entry point. FLEETPKI_WORKER_CONCURRENCY chunks in flight. The worker only pulls chunk jobs: the
// batch outbox (chunks queued again after a lost Redis or a killed worker) is the daemons' job.
await runService('batch-worker', (config) => startBatchWorker(config, { concurrency: Number(process.env.FLEETPKI_WORKER_CONCURRENCY ?? 2), metricsPort: workerMetricsPort(config.sites[config.site].metrics.worker) }));
