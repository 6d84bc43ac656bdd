import type { FastifyInstance } from 'fastify';
import { FleetError, parseEui64, parseKeyRole } from '@fleetpki/core';
import type { EnrolmentService, TokenAuthenticator } from '@fleetpki/ca';
import { serialHex } from '@fleetpki/ca';
import { DEFAULT_PROFILE_ID, getProfile, parseCsr, parseDevicePublicKey, toPem } from '@fleetpki/x509';
import { requireRole } from '../auth.js';
import type { IssuerMetrics } from '../metrics.js';
import type { SiteGuard } from '@fleetpki/ca';
import { certificateSchema } from './schemas.js';

interface EnrolmentBody {
  eui64: string;
  keyRole: string;
  profile?: string;
  deviceType?: string;
  csr?: string;
  publicKey?: string;
  format?: 'pem' | 'der';
}

export function registerEnrolmentRoutes(app: FastifyInstance, deps: { enrolment: EnrolmentService; authenticator: TokenAuthenticator; guard: SiteGuard; metrics: IssuerMetrics }): void {
  app.post<{ Body: EnrolmentBody }>(
    '/v1/enrolments',
    {
      preHandler: requireRole(deps.authenticator, ['factory']),
      bodyLimit: 16 * 1024,
      schema: {
        summary: 'Enrol one device key: returns its certificate',
        description: 'Give exactly one of `csr` (PKCS#10, PEM or base64 DER, proves possession) or `publicKey` (P-256 SPKI or point). One certificate per (device, key role, profile).',
        tags: ['enrolment'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          required: ['eui64', 'keyRole'],
          additionalProperties: false,
          properties: {
            eui64: { type: 'string', maxLength: 32, description: 'EUI-64, 16 hex digits (separators - or : allowed)' },
            keyRole: { type: 'string', maxLength: 40, description: 'digitalSignature or keyAgreement' },
            profile: { type: 'string', maxLength: 40, description: `certificate profile (default ${DEFAULT_PROFILE_ID})` },
            deviceType: { type: 'string', maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' },
            csr: { type: 'string', maxLength: 12_000 },
            publicKey: { type: 'string', maxLength: 4_096 },
            format: { type: 'string', enum: ['pem', 'der'], description: 'certificate encoding in the response (der = base64)' },
          },
        },
        response: { 201: certificateSchema },
      },
    },
    async (request, reply) => {
      await deps.guard.assertWritable();
      const body = request.body;
      const eui64 = parseEui64(body.eui64);
      const keyRole = parseKeyRole(body.keyRole);
      const profile = getProfile(body.profile ?? DEFAULT_PROFILE_ID);
      if ((body.csr === undefined) === (body.publicKey === undefined)) {
        throw new FleetError('KEY_SOURCE_INVALID', 'give exactly one of "csr" or "publicKey"', { httpStatus: 400 });
      }
      const publicKey = body.csr !== undefined ? parseCsr(body.csr) : parseDevicePublicKey(body.publicKey!);
      const principal = request.principal!;
      const issued = await deps.enrolment.enrol({
        eui64,
        keyRole,
        profileId: profile.id,
        deviceType: body.deviceType ?? 'smart-meter',
        publicKey,
        manufacturerId: principal.manufacturerId!,
        actor: `token:${principal.name}`,
      });
      deps.metrics.issued.inc({ profile: profile.id, key_role: keyRole });
      return reply.status(201).send({
        serial: serialHex(issued.serial),
        eui64,
        keyRole,
        profile: profile.id,
        status: 'good',
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
        crlShard: issued.crlShard,
        certificate: body.format === 'der' ? issued.der.toString('base64') : toPem(issued.der),
        format: body.format ?? 'pem',
      });
    },
  );
}
