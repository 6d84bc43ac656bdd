import type { FastifyInstance } from 'fastify';
import client from 'prom-client';

export interface IssuerMetrics {
  readonly registry: client.Registry;
  readonly issued: client.Counter<'profile' | 'key_role'>;
  /** 1 while writes are blocked (the synchronous standby unreachable), else 0. */
  readonly writesBlocked: client.Gauge;
}

/** Prometheus metrics: HTTP requests by route and status, latency, certificates issued, process stats. */
export function installMetrics(app: FastifyInstance): IssuerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'fleetpki_issuer_' });
  const requests = new client.Counter({ name: 'fleetpki_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'] as const, registers: [registry] });
  const latency = new client.Histogram({
    name: 'fleetpki_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['route'] as const,
    buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const issued = new client.Counter({ name: 'fleetpki_certificates_issued_total', help: 'certificates issued', labelNames: ['profile', 'key_role'] as const, registers: [registry] });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    latency.observe({ route }, reply.elapsedTime / 1000);
  });
  const writesBlocked = new client.Gauge({ name: 'fleetpki_writes_blocked', help: '1 while writes are blocked because the synchronous standby is unreachable', registers: [registry] });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  return { registry, issued, writesBlocked };
}
