import type { FastifyInstance } from 'fastify';
import { FleetError, eui64ToBytes, parseEui64, parseKeyRole } from '@fleetpki/core';
import type { DeviceKeyService, EnrolmentService, RawKeyStatements } from '@fleetpki/ca';
import { serialHex, auditActor } from '@fleetpki/ca';
import { CERTIFICATE_FORMATS, DEFAULT_PROFILE_ID, encodeIssuedCertificate, getProfile, checkCsr, parseC509Csr, parseCertificateFormat, parseDevicePublicKey, type PossessionVerifier } from '@fleetpki/x509';
import { type ApiAccess, requireRole } from '../auth.js';
import type { IssuerMetrics } from '../metrics.js';
import { certificateSchema } from './schemas.js';

interface EnrolmentBody {
  eui64: string;
  keyRole: string;
  profile?: string;
  deviceType?: string;
  csr?: string;
  publicKey?: string;
  publicKeySignature?: string;
  c509Csr?: string;
  format?: string;
  deviceKeys?: boolean;
}

export function registerEnrolmentRoutes(app: FastifyInstance, deps: { enrolment: EnrolmentService; deviceKeys: DeviceKeyService; rawKeys: RawKeyStatements; authenticator: ApiAccess; metrics: IssuerMetrics; possession: PossessionVerifier }): void {
  app.post<{ Body: EnrolmentBody }>(
    '/v1/enrolments',
    {
      preParsing: requireRole(deps.authenticator, ['factory']),
      bodyLimit: 16 * 1024,
      schema: {
        summary: 'Enrol one device key: returns its certificate',
        description:
          "Give exactly one of `csr` (PKCS#10, PEM or base64 DER, proves possession), `c509Csr` (C509 certification request, type 2 or 3, base64 CBOR, proves possession) or `publicKey` (P-256 SPKI or point) with `publicKeySignature`: the manufacturer's registered manifest-signing key over `fleetpki-raw-key/1\\n<manufacturer>\\n<EUI-64, 16 upper-case hex>\\n<keyRole>\\n<base64 SPKI DER>\\n` (ECDSA P-256, SHA-256, base64 DER). One certificate per (device, key role, profile).",
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
            publicKeySignature: { type: 'string', maxLength: 200, description: "with publicKey: the manufacturer's signature over the raw-key statement (base64 DER ECDSA)" },
            c509Csr: { type: 'string', maxLength: 12_000, description: 'C509 certification request (draft-ietf-cose-cbor-encoded-cert), base64' },
            format: { type: 'string', enum: CERTIFICATE_FORMATS, description: 'certificate encoding in the response: pem (default), der (base64) or c509 (base64 CBOR; the only one for natively signed profiles)' },
            deviceKeys: { type: 'boolean', description: "also return the device's symmetric keys (profiles with hybrid keys), wrapped for the manufacturer's transport key" },
          },
        },
        response: { 200: certificateSchema, 201: certificateSchema },
      },
    },
    async (request, reply) => {
      // "Site writable" and "CA active" are EnrolmentService's: asked first, before the request is parsed
      // and checked (enrol asks them again, before the device keys below and the intent).
      await deps.enrolment.assertMayIssue();
      const body = request.body;
      const eui64 = parseEui64(body.eui64);
      const keyRole = parseKeyRole(body.keyRole);
      const profile = getProfile(body.profile ?? DEFAULT_PROFILE_ID);
      const format = parseCertificateFormat(body.format, profile);
      if ([body.csr, body.c509Csr, body.publicKey].filter((k) => k !== undefined).length !== 1) {
        throw new FleetError('KEY_SOURCE_INVALID', 'give exactly one of "csr", "c509Csr" or "publicKey"', { httpStatus: 400 });
      }
      if (body.publicKeySignature !== undefined && body.publicKey === undefined) throw new FleetError('KEY_SOURCE_INVALID', '"publicKeySignature" goes with "publicKey" only (a CSR proves possession itself)', { httpStatus: 400 });
      const principal = request.principal!;
      // A raw key has no proof of possession: the manufacturer's signed statement stands in for it (as a signed manifest does in a batch).
      const publicKey =
        body.csr !== undefined
          ? await checkCsr(body.csr, deps.possession)
          : body.c509Csr !== undefined
            ? parseC509Csr(body.c509Csr)
            : await deps.rawKeys.prove({ manufacturerId: principal.manufacturerId!, eui64, keyRole, publicKey: parseDevicePublicKey(body.publicKey!), signature: body.publicKeySignature });
      // Refuse an impossible format before anything is recorded or signed.
      if (profile.nativeC509 && format !== 'c509') encodeIssuedCertificate(Buffer.alloc(0), profile, format);
      // Device keys once the guards passed and before the intent: they do not depend on the certificate
      // (deterministic per device, role and master version), so whatever fails here fails before a
      // certificate is recorded and the answer is 4xx.
      let deviceKeys: Awaited<ReturnType<DeviceKeyService['issueBundle']>> | undefined;
      const issued = await deps.enrolment.enrol(
        {
          eui64,
          keyRole,
          profileId: profile.id,
          deviceType: body.deviceType ?? 'smart-meter',
          publicKey,
          manufacturerId: principal.manufacturerId!,
          actor: auditActor(principal),
          protocol: 'api',
        },
        async () => {
          if (!body.deviceKeys) return;
          if (!profile.hybridKeys?.length) throw new FleetError('HYBRID_KEYS_OFF', `profile ${profile.id} delivers no device keys`, { httpStatus: 400 });
          deviceKeys = await deps.deviceKeys.issueBundle({ manufacturerId: principal.manufacturerId!, eui64s: [eui64ToBytes(eui64)], roles: profile.hybridKeys, context: `${eui64}/${keyRole}/${profile.id}`, actor: auditActor(principal) });
        },
      );
      if (!issued.reused) deps.metrics.issuance.issued(profile.id, keyRole);
      // Already answered 503 by the write deadline (its commit waited for the standby): the client
      // retries and gets this certificate then.
      if (reply.sent) return reply;
      // A retry with the same key gets its certificate again: 200, nothing new signed (201 when issued now).
      return reply.status(issued.reused ? 200 : 201).send({
        ...(deviceKeys ? { deviceKeys } : {}),
        serial: serialHex(issued.serial),
        eui64,
        keyRole,
        profile: profile.id,
        status: 'good',
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
        crlShard: issued.crlShard,
        certificate: encodeIssuedCertificate(issued.der, profile, format),
        format,
        ...(issued.reused ? { reused: true } : {}),
      });
    },
  );
}
