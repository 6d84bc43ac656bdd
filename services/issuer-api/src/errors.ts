import type { FastifyError, FastifyInstance } from 'fastify';
import type { FleetError} from '@fleetpki/core';
import { isFleetError } from '@fleetpki/core';

/** Fastify's own request errors, mapped to our stable codes. */
const FASTIFY_CODES: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'BODY_TOO_LARGE', message: 'request body is larger than this endpoint accepts' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'MEDIA_TYPE_UNSUPPORTED', message: 'send the body as application/json' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'BODY_EMPTY', message: 'the JSON body is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'BODY_MALFORMED', message: 'the body is not valid JSON' },
};

const REFUSALS_BY_DESIGN = new Set(['SITE_STANDBY', 'SITE_NOT_LEASED', 'STANDBY_UNAVAILABLE']);

/** Connection-level failures of PostgreSQL: refused, reset, shutting down or starting up (SQLSTATE 57P01-57P03, class 08). */
function isDatabaseUnreachable(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return /Connection terminated/.test(err.message);
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === '57P01' || code === '57P02' || code === '57P03' || code.startsWith('08');
}

/** Every error leaves as { code, message[, details] } with the right status; 5xx never leak internals. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | FleetError, request, reply) => {
    if (isFleetError(err)) {
      // A standby, a site without the lease or one waiting for its standby refusing writes is the design
      // working, not a fault: each request at info; the change of state itself is logged once, at error.
      if (REFUSALS_BY_DESIGN.has(err.code)) request.log.info({ code: err.code }, 'write refused by the site guard');
      else if (err.httpStatus >= 500) request.log.error({ err }, 'request failed');
      // Clients that should come back later are told when (RFC 9110 10.2.3).
      const retryAfter = (err.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
      if (typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter));
      if (reply.sent) return;
      return reply.status(err.httpStatus).send(err.toJSON());
    }
    const fastifyErr = err as FastifyError;
    if (fastifyErr.validation) {
      const where = fastifyErr.validationContext ?? 'request';
      const first = fastifyErr.validation[0];
      const field = first?.instancePath ? first.instancePath.replace(/^\//, '').replace(/\//g, '.') : ((first?.params as { missingProperty?: string; additionalProperty?: string } | undefined)?.missingProperty ?? (first?.params as { additionalProperty?: string } | undefined)?.additionalProperty ?? '');
      return reply.status(400).send({ code: 'REQUEST_INVALID', message: `${where}${field ? ` field "${field}"` : ''}: ${first?.message ?? fastifyErr.message}` });
    }
    const known = fastifyErr.code ? FASTIFY_CODES[fastifyErr.code] : undefined;
    if (known) return reply.status(known.status).send({ code: known.code, message: known.message });
    if (err instanceof SyntaxError || (fastifyErr.statusCode !== undefined && fastifyErr.statusCode < 500)) {
      return reply.status(fastifyErr.statusCode ?? 400).send({ code: 'REQUEST_INVALID', message: fastifyErr.message });
    }
    if (isDatabaseUnreachable(err)) {
      // The site's database restarting, failing over or rewinding: the client retries (here or at the other site).
      request.log.warn({ code: 'DATABASE_UNAVAILABLE', cause: (err as { code?: string }).code ?? err.message }, 'request refused: the database is unreachable');
      return reply.status(503).header('retry-after', '1').send({ code: 'DATABASE_UNAVAILABLE', message: `site's database is unreachable (${(err as { code?: string }).code ?? 'connection failed'}); try again, or the other site` });
    }
    request.log.error({ err }, 'unexpected error');
    return reply.status(500).send({ code: 'INTERNAL', message: `internal error (request ${request.id}); the operators have the details` });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ code: 'ROUTE_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }));
}
