// What a status responder serves, by who may fetch it how. OCSP and CRLs are signed objects a relying
// party checks itself, so they go over plain HTTP as well as HTTPS (RFC 5019 5, RFC 5280 4.2.1.13: fetching
// them over https would need the status of the server's own certificate first). /healthz and /metrics
// tell what the site is doing: HTTPS only once tls.status is set.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CA_IDS, type OcspAnswer, type OcspResponder, type StatusSite } from '@fleetpki/ca';

/** Largest OCSP request accepted (a few CertIDs; RFC 6960 requests are ~100 bytes). */
export const MAX_OCSP_REQUEST = 4 * 1024;

export interface StatusObjectDeps {
  readonly ocsp: OcspResponder;
  readonly store: StatusSite['store'];
  /** Counts each answer by its kind (fleetpki_ocsp_responses_total). */
  readonly responses: { inc(labels: { kind: string }): void };
  readonly maxAgeSeconds: number;
}

function sendOcsp(reply: FastifyReply, answer: OcspAnswer, cacheable: boolean, maxAgeSeconds: number) {
  reply.type('application/ocsp-response');
  if (cacheable && answer.nextUpdate && answer.thisUpdate) {
    // RFC 9919 6 (RFC 5019 6.2): caching headers from the response's own validity, but never longer than
    // the configured staleness: a cache must not hold a "good" for days after a revocation.
    const maxAge = Math.min(maxAgeSeconds, Math.max(0, Math.floor((answer.nextUpdate.getTime() - Date.now()) / 1000)));
    reply.header('cache-control', `max-age=${maxAge}, public, no-transform, must-revalidate`);
    reply.header('last-modified', answer.thisUpdate.toUTCString());
    reply.header('expires', answer.nextUpdate.toUTCString());
    reply.header('etag', answer.etag!);
  } else reply.header('cache-control', 'no-store');
  return reply.send(answer.der);
}

/** OCSP requests as bodies, and the errors every listener answers with a stable code. */
export function installStatusErrors(app: FastifyInstance): void {
  app.addContentTypeParser('application/ocsp-request', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _request, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send({ code: 'BODY_TOO_LARGE', message: `OCSP requests are at most ${MAX_OCSP_REQUEST} bytes` });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.status(415).send({ code: 'MEDIA_TYPE_UNSUPPORTED', message: 'send application/ocsp-request' });
    return reply.status(err.statusCode && err.statusCode < 500 ? err.statusCode : 500).send({ code: 'REQUEST_INVALID', message: err.message });
  });
}

/** OCSP over POST and GET, and the CRL shards at their distribution-point URLs. */
export function registerStatusObjectRoutes(app: FastifyInstance, deps: StatusObjectDeps): void {
  const { ocsp, store, responses, maxAgeSeconds } = deps;
  const rootIds = cachedRootIds(store);
  app.post('/ocsp', async (request, reply) => {
    const body = request.body;
    if (!Buffer.isBuffer(body)) return reply.status(415).send({ code: 'MEDIA_TYPE_UNSUPPORTED', message: 'send application/ocsp-request' });
    const answer = await ocsp.respond(body, request.ip);
    responses.inc({ kind: answer.kind });
    return sendOcsp(reply, answer, false, maxAgeSeconds);
  });
  // RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}
  app.get<{ Params: { '*': string } }>('/ocsp/*', async (request, reply) => {
    const encoded = request.params['*'];
    let der: Buffer;
    try {
      der = Buffer.from(decodeURIComponent(encoded), 'base64');
    } catch {
      der = Buffer.alloc(0);
    }
    const answer = der.length > 0 && der.length <= MAX_OCSP_REQUEST ? await ocsp.respond(der, request.ip) : { der: Buffer.from('30030a0101', 'hex'), kind: 'malformedRequest' as const };
    responses.inc({ kind: answer.kind });
    return sendOcsp(reply, answer, true, maxAgeSeconds);
  });
  app.get<{ Params: { caId: string; name: string } }>('/crl/:caId/:name', async (request, reply) => {
    // Device CRL shards sNNNN.crl (and -delta), and a root's ARL (arl.crl: its CRL of CA certificates,
    // one per root generation still trusted).
    const m = /^s(\d{4})(-delta)?\.crl$/.exec(request.params.name);
    const arl = request.params.name === 'arl.crl' && (request.params.caId === CA_IDS.root || (await rootIds()).has(request.params.caId));
    const crl = m ? await store.crl(request.params.caId, Number(m[1]), m[2] ? 'delta' : 'full') : arl ? await store.crl(request.params.caId, 0, 'full') : undefined;
    if (!crl) return reply.status(404).send({ code: 'CRL_NOT_FOUND', message: `no CRL ${request.params.caId}/${request.params.name}` });
    const maxAge = Math.max(0, Math.floor((crl.nextUpdate.getTime() - Date.now()) / 1000));
    return reply
      .type('application/pkix-crl')
      .header('cache-control', `max-age=${Math.min(maxAge, 60)}, public, no-transform`)
      .header('last-modified', crl.thisUpdate.toUTCString())
      .header('expires', crl.nextUpdate.toUTCString())
      .send(crl.der);
  });
}

/**
 * The roots' ids, read at most once a minute: anyone may ask for /crl/<anything>/arl.crl, and a name
 * that is not a root must not cost a database read each time. A new root generation is served within
 * a minute of its ceremony (its ARL is signed at the ceremony, and relying parties fetch it far later).
 */
function cachedRootIds(store: StatusSite['store'], ttlMs = 60_000): () => Promise<ReadonlySet<string>> {
  let cached: { ids: Promise<ReadonlySet<string>>; at: number } | undefined;
  return () => {
    if (!cached || Date.now() - cached.at > ttlMs) {
      const ids = store.cas().then((cas) => new Set(cas.filter((c) => c.kind === 'root').map((c) => c.id)));
      cached = { ids, at: Date.now() };
      ids.catch(() => {
        cached = undefined;
      });
    }
    return cached.ids;
  };
}

/**
 * The plain-HTTP listener beside HTTPS: whatever is not OCSP or a CRL is refused with a stable code
 * naming where it is served, so a probe pointed at the wrong port says so instead of seeming down.
 */
export function refuseOperatorRoutes(app: FastifyInstance, httpsUrl: string): void {
  app.setNotFoundHandler((request, reply) => reply.status(403).send({ code: 'HTTPS_REQUIRED', message: `${request.url.split('?')[0]} is served over HTTPS only (${httpsUrl}); this plain-HTTP listener serves OCSP and CRLs` }));
}
