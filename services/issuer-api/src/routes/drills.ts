import type { FastifyInstance } from 'fastify';
import type { FailoverDrills, SiteGuard } from '@fleetpki/ca';
import { FleetError, type FleetConfig } from '@fleetpki/core';
import { type ApiAccess, requireRole } from '../auth.js';
import { launchFailoverDrill } from '../drill-launcher.js';

/**
 * POST /v1/drills starts a failover drill on a test deployment. It kills the active site, so it is a
 * dual-control action like a planned switchover: an administrator requests drill.failover, a second
 * approves, one of the two starts it here with the approval's id (claimed once, given back if the drill
 * does not start). One drill at a time is the drill's own lock in etcd: a second gets 409 DRILL_RUNNING.
 * GET /v1/drills: the failover, switchover and failback drills run here, newest first, with their
 * figures and timelines.
 */
export function registerDrillRoutes(app: FastifyInstance, deps: { config: FleetConfig; drills: FailoverDrills; authenticator: ApiAccess; guard: SiteGuard }): void {
  app.post<{ Body: { kind: 'failover'; devices?: number; approval?: string } }>(
    '/v1/drills',
    {
      preParsing: requireRole(deps.authenticator, ['administrator']),
      schema: {
        summary: 'Start a failover drill (test deployments only: FLEETPKI_CONSOLE_DRILLS=on) under an approved drill.failover request; its figures appear in GET /v1/drills when it ends',
        description: 'Dual control: POST /v1/approvals {"action":"drill.failover"}, a second administrator approves, then one of the two starts it here with "approval". One drill at a time (409 DRILL_RUNNING).',
        tags: ['system'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          required: ['kind'],
          additionalProperties: false,
          properties: { kind: { type: 'string', enum: ['failover'] }, devices: { type: 'integer', minimum: 100, maximum: 100_000, default: 2_000 }, approval: { type: 'string', maxLength: 64 } },
        },
      },
    },
    async (request, reply) => {
      if (!deps.config.console.drills) {
        throw new FleetError('DRILLS_DISABLED', 'drills start from the API only on a test deployment (FLEETPKI_CONSOLE_DRILLS=on); elsewhere run `pnpm fleetpki drill failover` where the sites are', { httpStatus: 403 });
      }
      const approval = request.body.approval;
      if (!approval) {
        throw new FleetError('DUAL_CONTROL_REQUIRED', 'a failover drill kills the active site: it takes two administrators. Request it (POST /v1/approvals {"action":"drill.failover"}, or pnpm fleetpki approvals request drill.failover), have another administrator approve it, then POST /v1/drills {"kind":"failover","approval":"<id>"}', { httpStatus: 403 });
      }
      await deps.guard.assertWritable();
      const principal = request.principal!;
      const started = await deps.drills.start(principal, approval, () => launchFailoverDrill(deps.config, { devices: request.body.devices ?? 2_000, startedBy: `person:${principal.name} (approval ${approval})` }));
      return reply.status(202).send({ started: 'failover', pid: started.pid, log: started.log, approval });
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
      drills: (await deps.drills.history(request.query.limit ?? 50)).map((d) => ({ id: d.id, kind: d.kind, from: d.from, to: d.to, finishedAt: d.finishedAt.toISOString(), rtoSeconds: d.rtoSeconds, rpoLost: d.rpoLost, report: d.report })),
    }),
  );
}
