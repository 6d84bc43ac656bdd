import { runService } from '@fleetpki/core';
import { metricsPort } from '@fleetpki/metrics';
import { startBatchWorker } from './worker.js';

// Thin entry point. FLEETPKI_WORKER_CONCURRENCY chunks in flight. The worker only pulls chunk jobs: the
// batch outbox (chunks queued again after a lost Redis or a killed worker) is the daemons' job.
await runService('batch-worker', (config) => startBatchWorker(config, { concurrency: Number(process.env.FLEETPKI_WORKER_CONCURRENCY ?? 2), metricsPort: metricsPort(config.sites[config.site].metrics.worker) }));
