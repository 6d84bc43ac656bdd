import type { FastifyInstance, FastifyRequest } from 'fastify';
import { observeHsm } from '@fleetpki/hsm';
import { hsmMetrics, httpMetrics, issuanceMetrics, leaseMetrics, mayScrape, SCRAPE_FORBIDDEN, processRegistry, scraperList, writesBlockedMetric, type LeaseFigures, type EnrolmentProtocol, type IssuanceMetrics, type Registry } from '@fleetpki/metrics';

export interface IssuerMetrics {
  readonly registry: Registry;
  readonly issuance: IssuanceMetrics;
  readonly writesBlocked: (blocked: boolean) => void;
}

/** Which online enrolment protocol a route serves (CMP's route carries its other messages too). */
function protocolOf(method: string, route: string | undefined): EnrolmentProtocol | undefined {
  if (method !== 'POST' || !route) return undefined;
  if (route === '/v1/enrolments') return 'json';
  if (route.startsWith('/.well-known/est') && /\/(simpleenroll|simplereenroll|serverkeygen)$/.test(route)) return 'est';
  if (route.startsWith('/.well-known/cmp')) return 'cmp';
  return undefined;
}

// A refusal's code, noted where it is known: the CMP route (its errors are CMP messages with 200), or
// an error answer's JSON body.
const refusals = new WeakMap<FastifyRequest, string>();

/** The CMP route's answer was an error message: counted as a refusal with this code. */
export function noteRefusal(request: FastifyRequest, code: string | undefined): void {
  if (code !== undefined) refusals.set(request, code);
}

/**
 * Prometheus metrics of the issuer API (docs/metrics.md): HTTP requests and latency, issuance counts,
 * online enrolment latency and refusals by protocol, the HSM's operations, process figures.
 */
export function installMetrics(app: FastifyInstance, site: string, lease?: { state(): LeaseFigures }, scrapers?: readonly string[]): IssuerMetrics {
  const registry = processRegistry('issuer-api', site);
  observeHsm(hsmMetrics(registry));
  if (lease) leaseMetrics(registry, () => lease.state());
  const http = httpMetrics(registry);
  const issuance = issuanceMetrics(registry);
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode >= 400 && typeof payload === 'string' && protocolOf(request.method, request.routeOptions.url)) {
      try {
        const code = (JSON.parse(payload) as { code?: unknown }).code;
        if (typeof code === 'string') refusals.set(request, code);
      } catch {
        // not JSON: counted under its status below
      }
    }
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url;
    const seconds = reply.elapsedTime / 1000;
    http.request(request.method, route ?? 'unmatched', reply.statusCode, seconds);
    const protocol = protocolOf(request.method, route);
    if (protocol) issuance.enrolment(protocol, seconds, refusals.get(request) ?? (reply.statusCode >= 400 ? `HTTP_${reply.statusCode}` : undefined));
  });
  const allowed = scraperList(scrapers);
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (!mayScrape(allowed, request.socket.remoteAddress)) return reply.status(403).send(SCRAPE_FORBIDDEN);
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  return { registry, issuance, writesBlocked: writesBlockedMetric(registry) };
}
