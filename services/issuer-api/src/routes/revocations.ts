import type { FastifyInstance } from 'fastify';
import { FleetError, eui64FromBytes, eui64ToBytes, parseEui64, isUuid } from '@fleetpki/core';
import { parseRevocationReason, parseSerialHex, presentApproval, serialHex, type DualControl, type RevocationService, type SiteGuard } from '@fleetpki/ca';
import { databaseNow, getBatch, type Pool, type RevocationTarget } from '@fleetpki/store';
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

/** How many certificates a target can reach, for the dual-control threshold. */
async function targetSize(pool: Pool, target: RevocationTarget): Promise<number> {
  if (target.kind === 'serials') return target.serials.length;
  if (target.kind === 'devices') return target.eui64s.length;
  const batch = await getBatch(pool, target.batchId);
  if (!batch) throw new FleetError('BATCH_NOT_FOUND', `no batch ${target.batchId}`, { httpStatus: 404 });
  return batch.itemCount;
}

export async function runRevocation(revocations: RevocationService, body: RevocationBody, requestedBy: string): Promise<Record<string, unknown>> {
  const { target, reason } = parseRevocationBody(body);
  const outcome = await revocations.revoke({ target, reason, requestedBy, manufacturerId: null });
  return {
    revoked: outcome.revoked,
    alreadyRevoked: outcome.alreadyRevoked,
    notFound: outcome.notFound.length,
    notFoundFirst: outcome.notFound.slice(0, 100).map((n) => (target.kind === 'devices' ? eui64FromBytes(n) : serialHex(n))),
    crlShards: outcome.shards,
    reason,
  };
}

export function registerRevocationRoutes(app: FastifyInstance, deps: { pool: Pool; revocations: RevocationService; dualControl: DualControl; threshold: number; authenticator: ApiAccess; guard: SiteGuard }): void {
  app.post<{ Body: RevocationBody }>(
    '/v1/revocations',
    {
      preParsing: requireRole(deps.authenticator, ['revocation-officer', 'administrator']),
      // A list of a million serials is ~22 MB of JSON.
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        summary: 'Revoke certificates by serial, by device (all its certificates) or by batch',
        description: `Exactly one of serials, devices, batch. Idempotent: a certificate already revoked keeps its first reason and time. OCSP reports it within seconds; the next CRL of its shard lists it. A revocation of more than ${deps.threshold} certificates needs a second officer: it answers 202 with an approval request (POST /v1/approvals/{id}/approve by another officer, then /execute).`,
        tags: ['revocation'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            serials: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 1_000_000 },
            devices: { type: 'array', items: { type: 'string', maxLength: 32 }, maxItems: 1_000_000 },
            batch: { type: 'string', maxLength: 36 },
            reason: { anyOf: [{ type: 'string', maxLength: 40 }, { type: 'integer' }], description: 'RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ... or its code' },
          },
        },
      },
    },
    async (request, reply) => {
      await deps.guard.assertWritable();
      const { target, reason } = parseRevocationBody(request.body);
      const size = await targetSize(deps.pool, target);
      if (size > deps.threshold) {
        const summary = `revoke ${target.kind === 'batch' ? `batch ${target.batchId} (${size} certificates)` : `${size} ${target.kind}`}, reason ${reason}`;
        const approval = await deps.dualControl.request(request.principal!, 'revocation.bulk', request.body as Record<string, unknown>, summary);
        return reply.status(202).send({ approvalRequired: true, threshold: deps.threshold, approval: presentApproval(approval, await databaseNow(deps.pool)) });
      }
      return runRevocation(deps.revocations, request.body, `token:${request.principal!.name}`);
    },
  );
}
