import { createServer, type Server } from 'node:http';
import client from 'prom-client';
import type { SiteDaemons } from './site-daemons.js';

/** The daemons' figures as Prometheus metrics, read from their stats at each scrape. */
export function daemonMetrics(daemons: SiteDaemons): client.Registry {
  const registry = new client.Registry();
  const gauge = (name: string, help: string, value: (s: ReturnType<SiteDaemons['stats']>[number]) => number | undefined) =>
    new client.Gauge({
      name,
      help,
      labelNames: ['daemon'] as const,
      registers: [registry],
      collect() {
        for (const s of daemons.stats()) {
          const v = value(s);
          if (v !== undefined) this.set({ daemon: s.name }, v);
        }
      },
    });
  gauge('fleetpki_daemon_passes', 'Passes run to the end', (s) => s.passes);
  gauge('fleetpki_daemon_failures', 'Passes that failed (logged)', (s) => s.failures);
  gauge('fleetpki_daemon_skipped_not_leader', 'Passes not run: this site may not act now', (s) => s.skippedNotLeader);
  gauge('fleetpki_daemon_last_pass_seconds', 'When the last pass ended (unix seconds)', (s) => (s.lastPassAt ? s.lastPassAt.getTime() / 1000 : undefined));
  gauge('fleetpki_daemon_last_duration_seconds', 'How long the last pass took', (s) => (s.lastDurationMs === undefined ? undefined : s.lastDurationMs / 1000));
  return registry;
}

/** /healthz and /metrics on `port` (FLEETPKI_DAEMONS_METRICS_PORT), for the load balancer and Prometheus. */
export async function serveDaemonMetrics(daemons: SiteDaemons, host: string, port: number): Promise<Server> {
  const registry = daemonMetrics(daemons);
  const server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      } else if (req.url === '/healthz') {
        const blind = await daemons.blindWhileActive();
        res.writeHead(blind ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: blind ? 'blind' : 'ok', daemons: daemons.stats(), unavailable: daemons.unavailable, leases: daemons.leases() }));
      } else res.writeHead(404).end();
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return server;
}
