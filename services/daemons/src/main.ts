import { runService } from '@fleetpki/core';
import { serveDaemonMetrics } from './metrics.js';
import { openSiteDaemons, selectJobs } from './site-daemons.js';

// Thin entry point: the site's background jobs, one daemon each (CRL publisher, OCSP pre-producer and
// refresher, audit sealer; the reconcilers: batch outbox, online intents, CMP confirm expiry, EST
// superseded). `--only crl-publisher,audit-sealer` or FLEETPKI_DAEMONS selects some, and only the
// database roles those need are opened; FLEETPKI_DAEMONS_METRICS_PORT serves /healthz and /metrics.
await runService('daemons', async (config) => {
  const flag = process.argv.indexOf('--only');
  const only = selectJobs(flag >= 0 ? process.argv[flag + 1] : process.env.FLEETPKI_DAEMONS);
  const daemons = await openSiteDaemons(config, only ? { only } : {});
  const port = Number(process.env.FLEETPKI_DAEMONS_METRICS_PORT ?? 0);
  const server = port > 0 ? await serveDaemonMetrics(daemons, config.sites[config.site].host, port) : undefined;
  daemons.start();
  return {
    async close() {
      server?.close();
      await daemons.close();
    },
  };
});
