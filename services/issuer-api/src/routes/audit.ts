import type { FastifyInstance } from 'fastify';
import { auditCheckpointFile, auditReport, type AuditVerifyStore } from '@fleetpki/ca';
import { type ApiAccess, requireRole } from '../auth.js';

/**
 * GET /v1/audit/verify: the same check as `fleetpki audit verify` (chain recomputed over every row,
 * seals, the checkpoint file outside the database, seal signatures up to the root in the database).
 * A person who distrusts the database too runs the CLI with `--root` and their own copy of the root.
 */
export function registerAuditRoutes(app: FastifyInstance, deps: { audit: AuditVerifyStore; deploymentDir: string; authenticator: ApiAccess }): void {
  app.get(
    '/v1/audit/verify',
    { preParsing: requireRole(deps.authenticator, ['auditor', 'administrator', 'custodian']), schema: { summary: 'Verify the audit log: hash chain, seals, checkpoints', tags: ['audit'], security: [{ bearer: [] }] } },
    async () => {
      const r = await auditReport(deps.audit, auditCheckpointFile(deps.deploymentDir), 20);
      const seals = r.recentSeals.map((s) => ({ seq: s.seq, rows: s.rows, sealedAt: s.sealedAt.toISOString(), keyId: s.keyId?.toString('hex') ?? null }));
      return { intact: r.problems.length === 0, rows: r.rows, sealedUpTo: r.sealedUpTo, signedSeals: r.signedSeals, unsignedEarlySeals: r.unsignedEarlySeals, problems: r.problems, recentSeals: seals };
    },
  );
}
