import type { FastifyInstance } from 'fastify';
import { listDrillRuns, type Pool } from '@fleetpki/store';
import { type ApiAccess, requireRole } from '../auth.js';

/** GET /v1/drills: the failover, switchover and failback drills run here, newest first, with their figures and timelines. */
export function registerDrillRoutes(app: FastifyInstance, deps: { pool: Pool; authenticator: ApiAccess }): void {
  app.get<{ Querystring: { limit?: number } }>(
    '/v1/drills',
    {
      preParsing: requireRole(deps.authenticator, ['auditor', 'administrator', 'custodian']),
      schema: {
        summary: 'Drill history: RTO, RPO and the timeline of each drill',
        tags: ['system'],
        security: [{ bearer: [] }],
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 } } },
      },
    },
    async (request) => ({
      drills: (await listDrillRuns(deps.pool, request.query.limit ?? 50)).map((d) => ({ id: d.id, kind: d.kind, from: d.from, to: d.to, finishedAt: d.finishedAt.toISOString(), rtoSeconds: d.rtoSeconds, rpoLost: d.rpoLost, report: d.report })),
    }),
  );
}
