import { runService } from '@fleetpki/core';
import { serveDaemonMetrics } from './metrics.js';
import { openSiteDaemons, selectJobs } from './site-daemons.js';

// Thin entry point: the site's background jobs, one daemon each (CRL publisher, OCSP pre-producer and
// refresher, audit sealer; the reconcilers: batch outbox, online intents, CMP confirm expiry, EST
// superseded). `--only crl-publisher,audit-sealer` or FLEETPKI_DAEMONS selects some, and only the
// database roles those need are opened; FLEETPKI_DAEMONS_METRICS_PORT serves /healthz and /metrics.
/** How often a process started without the CA key checks whether its site became the one that acts. */
const BLIND_CHECK_MS = 5_000;

await runService('daemons', async (config) => {
  const flag = process.argv.indexOf('--only');
  const only = selectJobs(flag >= 0 ? process.argv[flag + 1] : process.env.FLEETPKI_DAEMONS);
  const daemons = await openSiteDaemons(config, only ? { only } : {});
  const port = Number(process.env.FLEETPKI_DAEMONS_METRICS_PORT ?? 0);
  const server = port > 0 ? await serveDaemonMetrics(daemons, config.sites[config.site].host, port) : undefined;
  daemons.start();
  // A site that became active while its status jobs have no CA key ends this process (exit 75,
  // EX_TEMPFAIL), so the supervisor (systemd Restart=on-failure) starts one that opens the key again.
  const watch = setInterval(() => {
    void daemons.blindWhileActive().then(async (blind) => {
      if (!blind) return;
      console.error(`daemons: DAEMONS_BLIND: site ${config.site} may act but its status jobs (${daemons.unavailable.join(', ')}) have no CA key; exiting to be restarted`);
      clearInterval(watch);
      server?.close();
      await daemons.close();
      process.exit(75);
    }, () => undefined);
  }, BLIND_CHECK_MS);
  return {
    async close() {
      clearInterval(watch);
      server?.close();
      await daemons.close();
    },
  };
});
