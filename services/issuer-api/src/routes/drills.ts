import type { FastifyInstance } from 'fastify';
import { auditActor } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { appendAuditEvents, listDrillRuns, type Pool } from '@fleetpki/store';
import { type ApiAccess, requireRole } from '../auth.js';
import { launchFailoverDrill } from '../drill-launcher.js';

/** GET /v1/drills: the failover, switchover and failback drills run here, newest first, with their figures and timelines. */
export function registerDrillRoutes(app: FastifyInstance, deps: { config: FleetConfig; pool: Pool; authenticator: ApiAccess }): void {
  app.post<{ Body: { kind: 'failover'; devices?: number } }>(
    '/v1/drills',
    {
      preParsing: requireRole(deps.authenticator, ['administrator']),
      schema: {
        summary: 'Start a failover drill (test deployments only: FLEETPKI_CONSOLE_DRILLS=on); its figures appear in GET /v1/drills when it ends',
        tags: ['system'],
        security: [{ bearer: [] }],
        body: { type: 'object', required: ['kind'], additionalProperties: false, properties: { kind: { type: 'string', enum: ['failover'] }, devices: { type: 'integer', minimum: 100, maximum: 100_000, default: 2_000 } } },
      },
    },
    async (request, reply) => {
      const started = launchFailoverDrill(deps.config, request.body.devices ?? 2_000);
      await appendAuditEvents(deps.pool, [{ site: deps.config.site, actor: auditActor(request.principal!), action: 'drill.start', subject: 'failover', details: { pid: started.pid, log: started.log } }]);
      return reply.status(202).send({ started: 'failover', pid: started.pid, log: started.log });
    },
  );

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
