import type { FastifyInstance } from 'fastify';
import { FleetError, eui64FromBytes, parseEui64 } from '@fleetpki/core';
import { parseSerialHex, serialHex, type CertificateReads } from '@fleetpki/ca';
import { CERTIFICATE_FORMATS, encodeIssuedCertificate, getProfile, parseCertificateFormat } from '@fleetpki/x509';
import { type ApiAccess, requireRole, visibleTo } from '../auth.js';
import { certificateSchema } from './schemas.js';

type StoredCertificate = Awaited<ReturnType<CertificateReads['get']>>;

const READERS = ['factory', 'revocation-officer', 'auditor', 'administrator', 'custodian'] as const;

function present(c: StoredCertificate, requested: string | undefined) {
  const profile = getProfile(c.profile);
  const format = parseCertificateFormat(requested, profile);
  return {
    serial: serialHex(c.serial),
    eui64: eui64FromBytes(c.eui64),
    keyRole: c.keyRole,
    profile: c.profile,
    status: c.revocation ? 'revoked' : 'good',
    ...(c.revocation ? { revocation: { reason: c.revocation.reason, revokedAt: c.revocation.revokedAt.toISOString() } } : {}),
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    crlShard: c.crlShard,
    certificate: encodeIssuedCertificate(c.der, profile, format),
    format,
  };
}

export function registerCertificateRoutes(app: FastifyInstance, deps: { certificates: CertificateReads; authenticator: ApiAccess }): void {
  // Authentication runs before the body is read (preParsing): a stranger's body is never parsed or validated.
  const admit = requireRole(deps.authenticator, READERS);
  const format = { type: 'object', properties: { format: { type: 'string', enum: CERTIFICATE_FORMATS } } } as const;

  app.get<{ Params: { serial: string }; Querystring: { format?: string } }>(
    '/v1/certificates/:serial',
    { preParsing: admit, schema: { summary: 'One certificate by serial (hex)', tags: ['certificates'], security: [{ bearer: [] }], params: { type: 'object', properties: { serial: { type: 'string', maxLength: 64 } } }, querystring: format, response: { 200: certificateSchema } } },
    async (request) => {
      const serial = parseSerialHex(request.params.serial);
      if (!serial) throw new FleetError('SERIAL_INVALID', `"${request.params.serial.slice(0, 64)}" is not a hex serial number`, { httpStatus: 400 });
      const cert = await deps.certificates.get(serial, (manufacturerId) => visibleTo(request.principal!, manufacturerId));
      return present(cert, request.query.format);
    },
  );

  app.get<{ Params: { eui64: string }; Querystring: { format?: string } }>(
    '/v1/devices/:eui64/certificates',
    { preParsing: admit, schema: { summary: "A device's certificates", tags: ['certificates'], security: [{ bearer: [] }], params: { type: 'object', properties: { eui64: { type: 'string', maxLength: 32 } } }, querystring: format } },
    async (request) => {
      const eui64 = parseEui64(request.params.eui64);
      const certs = await deps.certificates.forDevice(eui64, (manufacturerId) => visibleTo(request.principal!, manufacturerId));
      return { eui64, certificates: certs.map((c) => present(c, request.query.format)) };
    },
  );
}
