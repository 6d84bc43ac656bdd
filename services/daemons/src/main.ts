import { killSelf, runService, watchEventLoop } from '@fleetpki/core';
import { observeHsm } from '@fleetpki/hsm';
import { hsmMetrics, metricsPort, processRegistry } from '@fleetpki/metrics';
import { serveDaemonMetrics } from './metrics.js';
import { openSiteDaemons, passDeadlineFrom, selectJobs } from './site-daemons.js';

// Thin entry point: the site's background jobs, one daemon each (CRL publisher, OCSP pre-producer and
// refresher, audit sealer; the reconcilers: batch outbox, online intents, CMP confirm expiry, EST
// superseded). `--only crl-publisher,audit-sealer` or FLEETPKI_DAEMONS selects some, and only the
// database roles those need are opened; sites.<id>.metrics.daemons or FLEETPKI_METRICS_PORT serves /healthz and /metrics;
// FLEETPKI_DAEMONS_PASS_DEADLINE_MS bounds one pass and any stall of the event loop (default 10 minutes).
/** How often a process started without the CA key checks whether its site became the one that acts. */
const BLIND_CHECK_MS = 5_000;

await runService('daemons', async (config) => {
  const flag = process.argv.indexOf('--only');
  const only = selectJobs(flag >= 0 ? process.argv[flag + 1] : process.env.FLEETPKI_DAEMONS);
  const passDeadlineMs = passDeadlineFrom(process.env.FLEETPKI_DAEMONS_PASS_DEADLINE_MS);
  // A pass that hangs keeps its job's leadership lock, so no other instance would take the job over.
  // A wait in PostgreSQL ends by itself (the pools' lock and statement timeouts: a failed pass). What
  // nothing can cancel (an HSM call that never returns) ends the process: SIGKILL (killSelf: exit would
  // wait for the stuck thread), its sessions and job locks go with it, another instance takes the job at
  // its next check, and the supervisor starts this one again. A main thread blocked in a synchronous
  // native call fires no timer at all: a watchdog thread covers that case.
  const onStuck = (job: string, deadlineMs: number) =>
    killSelf(`daemons: DAEMONS_PASS_STUCK: a pass of ${job} has run for over ${deadlineMs} ms on site ${config.site}; killing this process so that its job locks are released and the job runs elsewhere, to be restarted`);
  const watchdog = watchEventLoop(passDeadlineMs, `daemons: DAEMONS_PASS_STUCK: site ${config.site}'s daemons process is stuck in a synchronous call; killing it so that its job locks are released, to be restarted`);
  // The registry before the HSM opens, so its first operations are counted.
  const registry = processRegistry('daemons', config.site);
  observeHsm(hsmMetrics(registry));
  const daemons = await openSiteDaemons(config, { ...(only ? { only } : {}), onStuck, passDeadlineMs });
  const port = metricsPort(config.sites[config.site].metrics.daemons);
  const server = port !== undefined ? await serveDaemonMetrics(registry, daemons, config.sites[config.site].host, port, config.sites[config.site].metrics.scrapers) : undefined;
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
      watchdog.stop();
      clearInterval(watch);
      server?.close();
      await daemons.close();
    },
  };
});
