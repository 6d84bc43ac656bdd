import type { FastifyInstance } from 'fastify';
import { FleetError, eui64FromBytes, eui64ToBytes, parseEui64 } from '@fleetpki/core';
import { parseRevocationReason, parseSerialHex, serialHex, type RevocationService, type SiteGuard, type TokenAuthenticator } from '@fleetpki/ca';
import type { RevocationTarget } from '@fleetpki/store';
import { requireRole } from '../auth.js';

interface RevocationBody {
  serials?: string[];
  devices?: string[];
  batch?: string;
  reason?: string | number;
}

export function registerRevocationRoutes(app: FastifyInstance, deps: { revocations: RevocationService; authenticator: TokenAuthenticator; guard: SiteGuard }): void {
  app.post<{ Body: RevocationBody }>(
    '/v1/revocations',
    {
      preHandler: requireRole(deps.authenticator, ['revocation-officer', 'administrator']),
      // A list of a million serials is ~22 MB of JSON.
      bodyLimit: 32 * 1024 * 1024,
      schema: {
        summary: 'Revoke certificates by serial, by device (all its certificates) or by batch',
        description: 'Exactly one of serials, devices, batch. Idempotent: a certificate already revoked keeps its first reason and time. OCSP reports it within seconds; the next CRL of its shard lists it.',
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
    async (request) => {
      await deps.guard.assertWritable();
      const b = request.body;
      const given = [b.serials, b.devices, b.batch].filter((x) => x !== undefined).length;
      if (given !== 1) throw new FleetError('REVOCATION_TARGET_INVALID', 'give exactly one of "serials", "devices" or "batch"', { httpStatus: 400 });
      const reason = parseRevocationReason(b.reason);
      let target: RevocationTarget;
      if (b.serials) {
        target = {
          kind: 'serials',
          serials: b.serials.map((s, i) => {
            const serial = parseSerialHex(s);
            if (!serial) throw new FleetError('SERIAL_INVALID', `serials[${i}]: "${s.slice(0, 64)}" is not a hex serial number`, { httpStatus: 400 });
            return serial;
          }),
        };
      } else if (b.devices) {
        target = {
          kind: 'devices',
          eui64s: b.devices.map((d, i) => {
            try {
              return eui64ToBytes(parseEui64(d));
            } catch (err) {
              throw new FleetError('EUI64_INVALID', `devices[${i}]: ${(err as Error).message}`, { httpStatus: 400 });
            }
          }),
        };
      } else {
        if (!/^[0-9a-f-]{36}$/i.test(b.batch!)) throw new FleetError('BATCH_NOT_FOUND', `no batch ${b.batch!.slice(0, 40)}`, { httpStatus: 404 });
        target = { kind: 'batch', batchId: b.batch! };
      }
      const outcome = await deps.revocations.revoke({ target, reason, requestedBy: `token:${request.principal!.name}`, manufacturerId: null });
      return {
        revoked: outcome.revoked,
        alreadyRevoked: outcome.alreadyRevoked,
        notFound: outcome.notFound.length,
        notFoundFirst: outcome.notFound.slice(0, 100).map((n) => (target.kind === 'devices' ? eui64FromBytes(n) : serialHex(n))),
        crlShards: outcome.shards,
        reason,
      };
    },
  );
}
