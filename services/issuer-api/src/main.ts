import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { isFleetError, runService } from '@fleetpki/core';
import { createIssuerRuntime } from './app.js';

// Thin entry point: configuration in, wired runtime out, listen, stop cleanly on SIGTERM/SIGINT.
// FLEETPKI_API_WORKERS processes share the port (node:cluster); each has its own HSM login and sessions.
// Default 1: on the 2-core reference machine two workers measured slower (417/s against 699/s) because
// PostgreSQL, the HSM and the clients share the same cores; raise it on bigger hosts.
const workers = Math.max(1, Math.min(Number(process.env.FLEETPKI_API_WORKERS ?? 1), availableParallelism()));

async function serve(): Promise<void> {
  await runService('issuer-api', async (config) => {
    const runtime = await createIssuerRuntime(config);
    await runtime.app.listen({ host: config.api.host, port: config.sites[config.site].apiPort });
    return runtime;
  });
}

try {
  if (cluster.isPrimary && workers > 1) {
    for (let i = 0; i < workers; i++) cluster.fork();
    // A worker that dies is replaced; a worker that cannot start (bad config) stops everything.
    cluster.on('exit', (worker, code) => {
      if (code === 1 && !worker.exitedAfterDisconnect) {
        console.error('issuer-api: a worker failed to start; stopping');
        process.exit(1);
      }
      if (!shuttingDown) cluster.fork();
    });
    let shuttingDown = false;
    const stopAll = () => {
      shuttingDown = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
      setTimeout(() => process.exit(0), 3_000).unref();
      cluster.on('exit', () => {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      });
    };
    process.once('SIGTERM', stopAll);
    process.once('SIGINT', stopAll);
    // `systemctl reload` signals the primary; each worker serves its own TLS context and reloads it.
    process.on('SIGHUP', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
    });
  } else {
    await serve();
  }
} catch (err) {
  console.error(isFleetError(err) ? `issuer-api: ${err.code}: ${err.message}` : err);
  process.exit(1);
}
