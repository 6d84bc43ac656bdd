import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetError, eui64FromBytes } from '@fleetpki/core';
import { ENROLMENT_LABELS, auditActor, enrolmentLabel, type EnrolmentRequestDecisions, type EstEnrolment, type HeldEnrolmentRequest, type IssuedCertificate } from '@fleetpki/ca';
import { certsOnly, estBase64, estCsrAttributes, readEstBase64 } from '@fleetpki/x509';
import { type ApiAccess, requireRole } from '../auth.js';
import type { IssuerMetrics } from '../metrics.js';

export interface EstDeps {
  readonly est: EstEnrolment;
  readonly authenticator: ApiAccess;
  readonly metrics: IssuerMetrics;
  /** /cacerts, DER: the issuing CA's certificate, its root's, and during a root transition the links (SiteIssuer.caCertificates). */
  readonly caCertificates: readonly Buffer[];
}

const CERTS_ONLY = 'application/pkcs7-mime; smime-type=certs-only';

/** EST runs over TLS only (RFC 7030 3.3): its credentials and the CSRs' binding depend on it. */
function requireTls(request: FastifyRequest): void {
  if (!(request.raw.socket as Partial<TLSSocket>).encrypted) {
    throw new FleetError('EST_TLS_REQUIRED', 'EST is served over HTTPS only (RFC 7030 3.3): start the API with FLEETPKI_API_TLS=on and use https://', { httpStatus: 403 });
  }
}

/**
 * The device certificate a re-enrolling device presented in the TLS handshake, chained by TLS to the
 * issuing CA (the API trusts the device chain as well as the organisation CA for client certificates).
 */
/** The device certificate a re-enrolment presented, found once per request (before its body is read). */
const presentedDevices = new WeakMap<FastifyRequest, { serial: Buffer; der: Buffer }>();

function presentedDeviceCertificate(request: FastifyRequest): { serial: Buffer; der: Buffer } {
  requireTls(request);
  const socket = request.raw.socket as TLSSocket;
  const peer = socket.getPeerCertificate();
  if (!peer?.raw) throw new FleetError('EST_DEVICE_CERT_REQUIRED', "simplereenroll is authenticated by the device's current certificate as the TLS client certificate; none was presented", { httpStatus: 401 });
  if (!socket.authorized) throw new FleetError('CLIENT_CERT_INVALID', `the client certificate does not chain to the issuing CA (${String(socket.authorizationError ?? 'unverified')})`, { httpStatus: 401 });
  const hex = peer.serialNumber.toLowerCase();
  return { serial: Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'), der: peer.raw };
}

/**
 * Enrolment over EST (RFC 7030) at /.well-known/est/ and /.well-known/est/<label>/, the label picking
 * the profile and key role (ENROLMENT_LABELS). The same enrolment service, audit rows, rate limits and
 * metrics as POST /v1/enrolments; only the envelope differs (PKCS#10 in, certs-only CMS out).
 */
export function registerEstRoutes(app: FastifyInstance, deps: EstDeps): void {
  const factoryOnly = requireRole(deps.authenticator, ['factory']);

  const respondCertificate = (reply: FastifyReply, issued: IssuedCertificate) =>
    reply.status(200).header('content-type', CERTS_ONLY).header('content-transfer-encoding', 'base64').send(estBase64(certsOnly([issued.der])));

  async function enrol(request: FastifyRequest<{ Params: { label?: string }; Body: string }>, reply: FastifyReply, renewal: boolean) {
    requireTls(request);
    const label = enrolmentLabel(request.params.label);
    const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/pkcs10') throw new FleetError('EST_MEDIA_TYPE', `send the CSR as application/pkcs10 (base64 DER), not "${type.slice(0, 60)}"`, { httpStatus: 415 });
    const csr = readEstBase64(request.body, 'the CSR');
    const device = renewal ? (presentedDevices.get(request) ?? presentedDeviceCertificate(request)) : undefined;
    const outcome = await deps.est.enrol({ csr, label, principal: request.principal, device });
    if (outcome.kind === 'later') return reply.status(202).header('retry-after', outcome.retryAfterSeconds).send(outcome.body);
    const issued = outcome.certificate;
    if (!issued.reused) deps.metrics.issuance.issued(outcome.profileId, label.keyRole);
    if (reply.sent) return reply; // answered 503 by the write deadline; the retry gets this certificate
    return respondCertificate(reply, issued);
  }

  app.register(async (est) => {
    // EST bodies are base64 text under their own media types; anything else is refused by the route
    // with a message naming the type (fastify's default would speak of JSON).
    est.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => done(null, body));
    // The third form is the second as strongSwan's `pki --est` (5.9.8) sends it: it appends
    // /.well-known/est/<operation> to whatever URL it is given, so a label can only go before that.
    for (const prefix of ['/.well-known/est', '/.well-known/est/:label', '/.well-known/est/:label/.well-known/est']) {
      const labelled = prefix.includes(':label');
      const params = labelled ? { type: 'object', properties: { label: { type: 'string', maxLength: 64, description: `profile and key role: ${ENROLMENT_LABELS.map((l) => l.label).join(', ')}` } } } : undefined;
      // The strongSwan form is the labelled one again: documented once, in the README.
      const hide = prefix.endsWith('/.well-known/est') && labelled;
      const docs = (summary: string, extra: Record<string, unknown> = {}) => ({ schema: { summary, tags: ['est'], ...(params ? { params } : {}), ...extra, ...(hide ? { hide: true } : {}) } });
      est.get<{ Params: { label?: string } }>(`${prefix}/cacerts`, docs('EST: the CA certificates (issuing CA, root, and the root link certificates during a root transition, RFC 7030 4.1.3), certs-only CMS, base64', { produces: ['application/pkcs7-mime'] }), async (request, reply) => {
        requireTls(request);
        enrolmentLabel(request.params.label);
        return reply.header('content-type', 'application/pkcs7-mime').header('content-transfer-encoding', 'base64').send(estBase64(certsOnly(deps.caCertificates)));
      });
      est.get<{ Params: { label?: string } }>(`${prefix}/csrattrs`, docs('EST: what a CSR must carry (P-256, ecdsa-with-SHA256, hardwareModuleName)', { produces: ['application/csrattrs'] }), async (request, reply) => {
        requireTls(request);
        enrolmentLabel(request.params.label);
        return reply.header('content-type', 'application/csrattrs').header('content-transfer-encoding', 'base64').send(estBase64(estCsrAttributes()));
      });
      est.post<{ Params: { label?: string }; Body: string }>(
        `${prefix}/simpleenroll`,
        {
          // TLS first, then the factory's credential, both before the body is read.
          preParsing: async (request, reply, payload) => {
            requireTls(request);
            return factoryOnly(request, reply, payload);
          },
          bodyLimit: 16 * 1024,
          ...docs('EST: enrol a device key (factory: client certificate or HTTP Basic with its API token)', { consumes: ['application/pkcs10'], produces: [CERTS_ONLY], security: [{ bearer: [] }] }),
        },
        (request, reply) => enrol(request, reply, false),
      );
      est.post<{ Params: { label?: string }; Body: string }>(
        `${prefix}/simplereenroll`,
        {
          preParsing: async (request, _reply, payload) => {
            // Checked before the body is read; the handler takes what was found here.
            presentedDevices.set(request, presentedDeviceCertificate(request));
            return payload;
          },
          bodyLimit: 16 * 1024,
          ...docs("EST: re-key a device, authenticated by its current certificate (TLS client certificate)", { consumes: ['application/pkcs10'], produces: [CERTS_ONLY] }) },
        (request, reply) => enrol(request, reply, true),
      );
    }
  });
}

/**
 * The administrators' side of held enrolment requests (every protocol's: the path is from when only EST
 * held them): list them, approve or refuse one (once). The factory's client is polling with the same
 * device key; its next request after an approval, by any protocol, gets the certificate.
 */
export function registerEstRequestRoutes(app: FastifyInstance, deps: { requests: EnrolmentRequestDecisions; authenticator: ApiAccess }): void {
  const present = (r: HeldEnrolmentRequest) => ({
    id: r.id,
    label: r.label,
    manufacturer: r.manufacturerId,
    eui64: eui64FromBytes(r.eui64),
    protocol: r.protocol,
    requestedBy: r.requestedBy,
    status: r.status,
    decidedBy: r.decidedBy,
    decidedAt: r.decidedAt?.toISOString() ?? null,
    createdAt: r.createdAt.toISOString(),
  });
  app.get<{ Querystring: { status?: 'pending' | 'approved' | 'refused' } }>(
    '/v1/est/requests',
    {
      preParsing: requireRole(deps.authenticator, ['administrator', 'auditor']),
      schema: { summary: 'Enrolment requests held for approval (labels in FLEETPKI_APPROVAL_LABELS; every protocol)', tags: ['est'], security: [{ bearer: [] }], querystring: { type: 'object', additionalProperties: false, properties: { status: { type: 'string', enum: ['pending', 'approved', 'refused'] } } } },
    },
    async (request) => (await deps.requests.list(request.query.status ?? 'pending')).map(present),
  );
  for (const decision of ['approve', 'refuse'] as const) {
    app.post<{ Params: { id: string } }>(
      `/v1/est/requests/:id/${decision}`,
      { preParsing: requireRole(deps.authenticator, ['administrator']), schema: { summary: `${decision} a held enrolment request`, tags: ['est'], security: [{ bearer: [] }], params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } } } },
      async (request) => present(await deps.requests.decide(request.params.id, decision === 'approve' ? 'approved' : 'refused', auditActor(request.principal!))),
    );
  }
}
