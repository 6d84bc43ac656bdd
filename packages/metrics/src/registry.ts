import { collectDefaultMetrics, Registry } from 'prom-client';

/** The processes that serve metrics (docs/metrics.md): the `process` label of every series. */
export type MetricsProcess = 'issuer-api' | 'status-responder' | 'batch-worker' | 'daemons' | 'site-agent';

/**
 * One registry per process, with `site` and `process` on every series (default labels), so the same
 * names from both sites and every process sit side by side in one Prometheus, and prom-client's
 * default process metrics (CPU, RSS, event-loop lag), unprefixed as every exporter names them.
 */
export function processRegistry(process: MetricsProcess, site: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ site, process });
  collectDefaultMetrics({ register: registry });
  return registry;
}
