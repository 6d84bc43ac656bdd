import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FleetError, isFleetError } from '@fleetpki/core';
import { ENROLMENT_LABELS, auditActor, enrolmentLabel, type CmpAuthBudget, type CmpAuthTicket, type CmpSecretAdministration, type CmpServer } from '@fleetpki/ca';
import { MAX_PKI_MESSAGE_BYTES } from '@fleetpki/cmp';
import { type ApiAccess, requireRole } from '../auth.js';
import { noteRefusal } from '../metrics.js';

const PKIXCMP = 'application/pkixcmp';

/** The place each CMP request took in its address's budget (taken before its body is read). */
const tickets = new WeakMap<FastifyRequest, CmpAuthTicket>();

/**
 * CMP over HTTP (RFC 6712, RFC 9483 6.1): POST a DER PKIMessage as application/pkixcmp to
 * /.well-known/cmp or /.well-known/cmp/p/<label> (the label picks profile and key role, as for EST).
 * The message carries its own protection, so plain HTTP is allowed as well as HTTPS. CMP errors are CMP
 * error messages with 200; only what is not CMP at all (another media type, too big) gets a 4xx, and a
 * site that cannot write now answers 503 with Retry-After.
 *
 * Anyone can send one, and checking it costs before anything proves who sent it (a secret derived in
 * the HSM, PBM iterations, an HSM-signed error), so before its body is read a request must be allowed
 * by the failed-authentication limit its address shares with tokens and client certificates, and take
 * a place in the address's CMP budget (CmpAuthBudget); either refusal is a plain 429, nothing parsed,
 * derived or signed. A request whose protection fails is counted and audited as a failed authentication.
 */
export function registerCmpRoutes(app: FastifyInstance, deps: { server: CmpServer; access: ApiAccess; budget: CmpAuthBudget }): void {
  app.register(async (cmp) => {
    cmp.addContentTypeParser(PKIXCMP, { parseAs: 'buffer', bodyLimit: MAX_PKI_MESSAGE_BYTES }, (_request, body, done) => done(null, body));
    // Anything else is refused by the handler, with a message naming the type.
    cmp.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_PKI_MESSAGE_BYTES }, (_request, _body, done) => done(null, undefined));
    for (const path of ['/.well-known/cmp', '/.well-known/cmp/p/:label']) {
      const labelled = path.includes(':label');
      cmp.post<{ Params: { label?: string }; Body: Buffer | undefined }>(
        path,
        {
          bodyLimit: MAX_PKI_MESSAGE_BYTES,
          preParsing: async (request, _reply, payload) => {
            deps.access.assertAuthenticationAllowed(request);
            tickets.set(request, deps.budget.take(request.ip));
            return payload;
          },
          schema: {
            summary: `CMP (RFC 9483): ir, cr, p10cr, kur, rr, certConf, genm as ${PKIXCMP}`,
            tags: ['cmp'],
            consumes: [PKIXCMP],
            produces: [PKIXCMP],
            ...(labelled ? { params: { type: 'object', properties: { label: { type: 'string', maxLength: 64, description: `profile and key role: ${ENROLMENT_LABELS.map((l) => l.label).join(', ')}` } } } } : {}),
          },
        },
        async (request, reply) => {
          const ticket = tickets.get(request)!;
          const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
          let answer;
          try {
            if (type !== PKIXCMP || !request.body) throw new FleetError('CMP_MEDIA_TYPE', `send a DER PKIMessage as ${PKIXCMP}, not "${type.slice(0, 60)}"`, { httpStatus: 415 });
            const label = enrolmentLabel(request.params.label);
            answer = await deps.server.handle(request.body, label, () => ticket.refund());
          } catch (err) {
            // Not CMP at all, or a fault of this server (the HSM, the database): not the sender's failure.
            ticket.refund();
            if (isFleetError(err)) throw err;
            request.log.error({ err: { message: (err as Error).message } }, 'CMP request failed');
            throw new FleetError('CMP_UNAVAILABLE', 'the CMP service cannot answer now; try again', { httpStatus: 503 });
          }
          // Its place in the budget stays spent, and the address's failed authentications count it.
          noteRefusal(request, answer.refusal);
          if (!answer.authenticated) await deps.access.recordFailedAuthentication(request, 'CMP_PROTECTION_FAILED');
          if (answer.retryAfterSeconds) reply.header('retry-after', String(answer.retryAfterSeconds));
          return reply.status(answer.httpStatus).header('content-type', PKIXCMP).send(answer.der);
        },
      );
    }
  });
}

/** Administrators provision factories' CMP MAC references (the secret is shown once) and withdraw them. */
export function registerCmpSecretRoutes(app: FastifyInstance, deps: { secrets: CmpSecretAdministration; authenticator: ApiAccess }): void {
  app.post<{ Body: { reference: string; manufacturer: string } }>(
    '/v1/cmp/secrets',
    {
      preParsing: requireRole(deps.authenticator, ['administrator']),
      schema: {
        summary: "Issue a factory's CMP reference and shared secret (password-based MAC); again for a new secret",
        description: 'The secret is returned once: `openssl cmp -ref <reference> -secret pass:<secret>`. It is derived in the HSM and not stored.',
        tags: ['cmp'],
        security: [{ bearer: [] }],
        body: { type: 'object', additionalProperties: false, required: ['reference', 'manufacturer'], properties: { reference: { type: 'string', maxLength: 64 }, manufacturer: { type: 'string', maxLength: 64 } } },
      },
    },
    async (request, reply) => {
      const issued = await deps.secrets.issue(request.body.reference, request.body.manufacturer, auditActor(request.principal!));
      return reply.status(201).send(issued);
    },
  );
  app.delete<{ Params: { reference: string } }>(
    '/v1/cmp/secrets/:reference',
    { preParsing: requireRole(deps.authenticator, ['administrator']), schema: { summary: "Withdraw a factory's CMP reference", tags: ['cmp'], security: [{ bearer: [] }], params: { type: 'object', properties: { reference: { type: 'string', maxLength: 64 } } } } },
    async (request) => {
      await deps.secrets.withdraw(request.params.reference, auditActor(request.principal!));
      return { reference: request.params.reference, revoked: true };
    },
  );
}
