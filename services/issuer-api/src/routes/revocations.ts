import type { FastifyInstance } from 'fastify';
import { FleetError, eui64FromBytes, eui64ToBytes, isFleetError, parseEui64, isUuid } from '@fleetpki/core';
import { parseRevocationReason, parseSerialHex, presentApproval, serialHex, type DualControl, type Principal, type RevocationService, type SiteGuard } from '@fleetpki/ca';
import type { RevocationTarget } from '@fleetpki/store';
import { type ApiAccess, requireRole } from '../auth.js';

export interface RevocationBody {
  serials?: string[];
  devices?: string[];
  batch?: string;
  reason?: string | number;
}

/** The body as a revocation: one target and an RFC 5280 reason. Also re-run on an approved request. */
export function parseRevocationBody(b: RevocationBody): { target: RevocationTarget; reason: number } {
  const given = [b.serials, b.devices, b.batch].filter((x) => x !== undefined).length;
  if (given !== 1) throw new FleetError('REVOCATION_TARGET_INVALID', 'give exactly one of "serials", "devices" or "batch"', { httpStatus: 400 });
  const reason = parseRevocationReason(b.reason);
  if (b.serials) {
    return {
      reason,
      target: {
        kind: 'serials',
        serials: b.serials.map((s, i) => {
          const serial = parseSerialHex(s);
          if (!serial) throw new FleetError('SERIAL_INVALID', `serials[${i}]: "${String(s).slice(0, 64)}" is not a hex serial number`, { httpStatus: 400 });
          return serial;
        }),
      },
    };
  }
  if (b.devices) {
    return {
      reason,
      target: {
        kind: 'devices',
        eui64s: b.devices.map((d, i) => {
          try {
            return eui64ToBytes(parseEui64(d));
          } catch (err) {
            throw new FleetError('EUI64_INVALID', `devices[${i}]: ${(err as Error).message}`, { httpStatus: 400 });
          }
        }),
      },
    };
  }
  if (typeof b.batch !== 'string' || !isUuid(b.batch)) throw new FleetError('BATCH_NOT_FOUND', `no batch ${b.batch!.slice(0, 40)}`, { httpStatus: 404 });
  return { reason, target: { kind: 'batch', batchId: b.batch! } };
}

/**
 * Runs a revocation as `by`: under an approval (`approvalId`), or, without one, within the person's
 * cumulative dual-control threshold (`threshold`), which the store checks in the revocation's own
 * transaction and refuses past with DUAL_CONTROL_THRESHOLD, writing nothing.
 */
export async function runRevocation(revocations: RevocationService, body: RevocationBody, context: { by: Principal; approvalId: string | null; threshold?: { certificates: number; windowMinutes: number } }): Promise<Record<string, unknown>> {
  const { target, reason } = parseRevocationBody(body);
  const requestedBy = `person:${context.by.name}${context.approvalId ? ` (approval ${context.approvalId})` : ''}`;
  const outcome = await revocations.revoke({ target, reason, requestedBy, manufacturerId: null, personId: context.by.personId, approvalId: context.approvalId, ...(context.threshold ? { threshold: context.threshold } : {}) });
  return {
    revoked: outcome.revoked,
    alreadyRevoked: outcome.alreadyRevoked,
    notFound: outcome.notFound.length,
    notFoundFirst: outcome.notFound.slice(0, 100).map((n) => (target.kind === 'devices' ? eui64FromBytes(n) : serialHex(n))),
    crlShards: outcome.shards,
    reason,
  };
}

const REVOCATION_BODY_PROPERTIES = {
  serials: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 1_000_000 },
  devices: { type: 'array', items: { type: 'string', maxLength: 32 }, maxItems: 1_000_000 },
  batch: { type: 'string', maxLength: 36 },
  reason: { anyOf: [{ type: 'string', maxLength: 40 }, { type: 'integer' }], description: 'RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ... or its code' },
} as const;

export function registerRevocationRoutes(app: FastifyInstance, deps: { revocations: RevocationService; dualControl: DualControl; threshold: { certificates: number; windowMinutes: number }; authenticator: ApiAccess; guard: SiteGuard }): void {
  app.post<{ Body: RevocationBody }>(
    '/v1/revocations/preview',
    {
      preParsing: requireRole(deps.authenticator, ['revocation-officer', 'administrator']),
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        summary: 'Count what a revocation would revoke (certificates, already revoked, per batch) and whether it needs a second person; changes nothing',
        tags: ['revocation'],
        security: [{ bearer: [] }],
        body: { type: 'object', additionalProperties: false, properties: REVOCATION_BODY_PROPERTIES },
      },
    },
    async (request) => {
      const { target, reason } = parseRevocationBody(request.body);
      const preview = await deps.revocations.preview(target);
      return { ...preview, reason, approvalRequired: preview.wouldRevoke > deps.threshold.certificates, threshold: deps.threshold.certificates, windowMinutes: deps.threshold.windowMinutes };
    },
  );

  app.post<{ Body: RevocationBody }>(
    '/v1/revocations',
    {
      preParsing: requireRole(deps.authenticator, ['revocation-officer', 'administrator']),
      // A list of a million serials is ~22 MB of JSON.
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        summary: 'Revoke certificates by serial, by device (all its certificates) or by batch',
        description: `Exactly one of serials, devices, batch. Idempotent: a certificate already revoked keeps its first reason and time. OCSP reports it within seconds; the next CRL of its shard lists it. Two-person rule: when the certificates this would newly revoke, plus those the same person revoked without approval in the last ${deps.threshold.windowMinutes} minutes, are more than ${deps.threshold.certificates}, it answers 202 with an approval request (POST /v1/approvals/{id}/approve by another person, then /execute) and revokes nothing yet.`,
        tags: ['revocation'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: REVOCATION_BODY_PROPERTIES,
        },
      },
    },
    async (request, reply) => {
      await deps.guard.assertWritable();
      const { target, reason } = parseRevocationBody(request.body);
      try {
        return await runRevocation(deps.revocations, request.body, { by: request.principal!, approvalId: null, threshold: deps.threshold });
      } catch (err) {
        if (!isFleetError(err, 'DUAL_CONTROL_THRESHOLD')) throw err;
        const counted = err.details as { wouldRevoke: number; recentWithoutApproval: number };
        const what = target.kind === 'batch' ? `batch ${target.batchId}` : `${target.kind === 'serials' ? target.serials.length : target.eui64s.length} ${target.kind}`;
        const summary = `revoke ${what}: ${counted.wouldRevoke} certificate(s), reason ${reason}`;
        const approval = await deps.dualControl.request(request.principal!, 'revocation.bulk', request.body as Record<string, unknown>, summary);
        return reply.status(202).send({ approvalRequired: true, threshold: deps.threshold.certificates, windowMinutes: deps.threshold.windowMinutes, ...counted, approval: presentApproval(approval, await deps.revocations.databaseNow()) });
      }
    },
  );
}
