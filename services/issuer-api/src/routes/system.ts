import type { FastifyInstance } from 'fastify';
import type { IssuingCa } from '@fleetpki/ca';
import type { Pool } from '@fleetpki/store';
import type { SiteGuard } from '@fleetpki/ca';

export function registerSystemRoutes(app: FastifyInstance, deps: { pool: Pool; guard: SiteGuard; chainPem: string; ca: IssuingCa; site: string }): void {
  app.get('/v1/ca/chain', { schema: { summary: 'The device issuing CA and root certificates (PEM)', tags: ['ca'] } }, async (_request, reply) =>
    reply.type('application/pem-certificate-chain').header('cache-control', 'public, max-age=3600').send(deps.chainPem),
  );
  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['system'] } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Readiness: database reachable, CA key usable', tags: ['system'] } }, async (_request, reply) => {
    try {
      const standby = await deps.guard.isStandby();
      return { status: 'ready', site: deps.site, role: standby ? 'standby' : 'active', ca: deps.ca.record.id };
    } catch (err) {
      return reply.status(503).send({ code: 'NOT_READY', message: `database unreachable: ${(err as Error).message}` });
    }
  });
}
