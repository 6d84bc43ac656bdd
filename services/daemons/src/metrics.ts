import type { Server } from 'node:http';
import { batchQueueMetrics, collectedGauge, leaseMetrics, scraperList, serveMetrics, type Registry } from '@fleetpki/metrics';
import type { SiteDaemons } from './site-daemons.js';

/**
 * The daemons' figures as Prometheus metrics, read from their stats at each scrape: passes and failures
 * per daemon, the OCSP pre-producer's backlog, and the site's role as the jobs see it.
 */
export function daemonMetrics(registry: Registry, daemons: SiteDaemons): Registry {
  const each = (name: string, help: string, value: (s: ReturnType<SiteDaemons['stats']>[number]) => number | undefined) =>
    collectedGauge(registry, name, help, ['daemon'], (set) => {
      for (const s of daemons.stats()) {
        const v = value(s);
        if (v !== undefined) set({ daemon: s.name }, v);
      }
    });
  each('fleetpki_daemon_passes', 'Passes run to the end', (s) => s.passes);
  each('fleetpki_daemon_failures', 'Passes that failed (logged)', (s) => s.failures);
  each('fleetpki_daemon_skipped_not_leader', 'Passes not run: this site may not act now', (s) => s.skippedNotLeader);
  each('fleetpki_daemon_last_pass_seconds', 'When the last pass ended (unix seconds)', (s) => (s.lastPassAt ? s.lastPassAt.getTime() / 1000 : undefined));
  each('fleetpki_daemon_last_duration_seconds', 'How long the last pass took', (s) => (s.lastDurationMs === undefined ? undefined : s.lastDurationMs / 1000));
  collectedGauge(registry, 'fleetpki_ocsp_preproduction_backlog_seconds', 'How long the OCSP pre-producer has ended its passes with certificates still waiting (0: caught up)', ['ca'], (set) => {
    if (daemons.preProducer && daemons.site) set({ ca: daemons.site.caId }, daemons.preProducer.backlogSeconds());
  });
  if (daemons.batchFigures) batchQueueMetrics(registry, daemons.batchFigures);
  // Any of the jobs' leases: they all read the same site's role.
  const lease = Object.values(daemons.leases())[0];
  if (lease) leaseMetrics(registry, () => Object.values(daemons.leases())[0] ?? lease);
  return registry;
}

/** /healthz and /metrics on `port` (sites.<id>.metrics.daemons, FLEETPKI_METRICS_PORT), for the load balancer and Prometheus. */
export async function serveDaemonMetrics(registry: Registry, daemons: SiteDaemons, host: string, port: number, scrapers?: readonly string[]): Promise<Server> {
  daemonMetrics(registry, daemons);
  return serveMetrics(registry, host, port, async (request) => {
    if (request.url !== '/healthz') return undefined;
    const blind = await daemons.blindWhileActive();
    return { status: blind ? 503 : 200, body: { status: blind ? 'blind' : 'ok', daemons: daemons.stats(), unavailable: daemons.unavailable, leases: daemons.leases() } };
  }, scraperList(scrapers));
}
