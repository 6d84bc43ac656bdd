import type { FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { FleetError } from '@fleetpki/core';

/**
 * Response headers for an API that serves JSON, NDJSON, DER and CBOR, never pages (OWASP secure headers).
 * Written out rather than through a helmet-style plugin: these five are all it needs, and the API docs
 * page (/docs, swagger UI) keeps its own scripts, which a site-wide CSP would forbid.
 */
export function installSecurityHeaders(app: FastifyInstance, options: { https: boolean }): void {
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', reply.getHeader('cache-control') ?? 'no-store');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    // The API docs (swagger UI) keep their own scripts; console pages set their own, narrower policy.
    if (!request.url.startsWith('/docs') && !request.url.startsWith('/console')) reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    if (options.https) reply.header('strict-transport-security', 'max-age=31536000');
  });
}

/**
 * Requests per client address and minute (@fastify/rate-limit); health, readiness and metrics are
 * exempt so probes never see 429. Factory lines behind one NAT share an address: size it for them.
 */
export async function installRateLimits(app: FastifyInstance, perMinute: number): Promise<void> {
  await app.register(rateLimit, {
    max: perMinute,
    timeWindow: 60_000,
    allowList: (request) => ['/healthz', '/readyz', '/metrics'].includes(request.url),
    // A request over a Unix socket (a local reverse proxy, a test) has no address: they share one budget.
    keyGenerator: (request) => request.ip ?? 'unix-socket',
    errorResponseBuilder: (_request, context) => new FleetError('RATE_LIMITED', `more than ${context.max} requests a minute from this address; retry in ${Math.ceil(context.ttl / 1000)} s`, { httpStatus: 429 }),
  });
}
