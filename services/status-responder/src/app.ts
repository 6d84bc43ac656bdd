import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import client from 'prom-client';
import {
  CA_IDS,
  CrlPublisher,
  OCSP_PASS_LIMITS,
  OcspAnswerCache,
  OcspPreProducer,
  OcspRefresher,
  OcspResponder,
  OcspRevocationResigner,
  auditCheckpointFile,
  ensureAuditKey,
  openStatusSite,
  sealAuditLog,
  type AuditSigner,
  type OcspAnswer,
} from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { BackgroundLoop } from './background-loop.js';

/** Largest OCSP request accepted (a few CertIDs; RFC 6960 requests are ~100 bytes). */
const MAX_OCSP_REQUEST = 4 * 1024;

export interface StatusRuntime {
  readonly app: FastifyInstance;
  readonly ocsp: OcspResponder;
  /** Notices revocations for the cache and re-signs them (kept in this process: see OcspRevocationResigner). */
  readonly revocations: OcspRevocationResigner;
  readonly preProducer: OcspPreProducer;
  readonly refresher: OcspRefresher;
  readonly publisher: CrlPublisher | undefined;
  /** One pass of the background work: revocations -> OCSP, due CRL shards, expiring responses, new certificates. */
  tick(): Promise<void>;
  close(): Promise<void>;
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

/**
 * The status service of a site: OCSP over GET and POST, and the CRL shards at their distribution-point
 * URLs, from the site's own database (a hot standby on site B). On the active site it also publishes
 * CRLs and pre-produces OCSP responses. Without the CA key in this site's HSM it serves what is stored.
 */
export async function createStatusRuntime(config: FleetConfig, options: { logger?: boolean; tickEveryMs?: number } = {}): Promise<StatusRuntime> {
  const status = await openStatusSite(config, { connections: 8 });
  const { store, lease, keyStore, signing } = status;
  const site = config.sites[config.site];
  try {
    const canWrite = () => status.canAct();
    const publisher = status.ca ? new CrlPublisher(store, status.ca, config.crlBaseUrl) : undefined;
    const cache = new OcspAnswerCache();
    const revocations = new OcspRevocationResigner(store, status.caId, signing, cache, canWrite);
    revocations.startWatchingFrom(new Date());
    const ocsp = new OcspResponder(store, status.caId, status.issuer, signing, canWrite, cache, { vouching: () => lease.state().vouching, onDemand: config.ocspOnDemand, revocations });
    const preProducer = new OcspPreProducer(store, status.caId, signing, canWrite, () => revocations.busy);
    const refresher = new OcspRefresher(store, status.caId, signing, canWrite);

    const registry = new client.Registry();
    const responses = new client.Counter({ name: 'fleetpki_ocsp_responses_total', help: 'OCSP responses by kind', labelNames: ['kind'] as const, registers: [registry] });
    const app = Fastify({ logger: options.logger ?? { level: config.logLevel }, bodyLimit: MAX_OCSP_REQUEST });
    app.addContentTypeParser('application/ocsp-request', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _request, reply) => {
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send({ code: 'BODY_TOO_LARGE', message: `OCSP requests are at most ${MAX_OCSP_REQUEST} bytes` });
      if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.status(415).send({ code: 'MEDIA_TYPE_UNSUPPORTED', message: 'send application/ocsp-request' });
      return reply.status(err.statusCode && err.statusCode < 500 ? err.statusCode : 500).send({ code: 'REQUEST_INVALID', message: err.message });
    });

    app.post('/ocsp', async (request, reply) => {
      const body = request.body;
      if (!Buffer.isBuffer(body)) return reply.status(415).send({ code: 'MEDIA_TYPE_UNSUPPORTED', message: 'send application/ocsp-request' });
      const answer = await ocsp.respond(body, request.ip);
      responses.inc({ kind: answer.kind });
      return sendOcsp(reply, answer, false, config.ocspMaxAgeSeconds);
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
      return sendOcsp(reply, answer, true, config.ocspMaxAgeSeconds);
    });

    app.get<{ Params: { caId: string; name: string } }>('/crl/:caId/:name', async (request, reply) => {
      // Device CRL shards sNNNN.crl (and -delta), and the root's ARL (arl.crl: its CRL of CA certificates).
      const m = /^s(\d{4})(-delta)?\.crl$/.exec(request.params.name);
      const arl = request.params.name === 'arl.crl' && request.params.caId === CA_IDS.root;
      const crl = m ? await store.crl(request.params.caId, Number(m[1]), m[2] ? 'delta' : 'full') : arl ? await store.crl(CA_IDS.root, 0, 'full') : undefined;
      if (!crl) return reply.status(404).send({ code: 'CRL_NOT_FOUND', message: `no CRL ${request.params.caId}/${request.params.name}` });
      const maxAge = Math.max(0, Math.floor((crl.nextUpdate.getTime() - Date.now()) / 1000));
      return reply
        .type('application/pkix-crl')
        .header('cache-control', `max-age=${Math.min(maxAge, 60)}, public, no-transform`)
        .header('last-modified', crl.thisUpdate.toUTCString())
        .header('expires', crl.nextUpdate.toUTCString())
        .send(crl.der);
    });
    app.get('/healthz', async () => ({ status: 'ok', signing: signing !== undefined, lease: lease.state() }));
    app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));

    // Revocations have their own loop: a relying party must see one within a second or so, and CRL
    // publishing, pre-production and audit seals (seconds each under a backlog) must not delay it.
    const applyRevocations = async (): Promise<boolean> => {
      const started = Date.now();
      const revoked = await revocations.applyAllNewRevocations();
      if (revoked > 0) app.log.info({ revocations: revoked, ms: Date.now() - started }, 'revocations applied to OCSP');
      return false;
    };
    const upkeep = async (): Promise<boolean> => {
      // OCSP is the channel relying parties see within seconds, CRLs within their publication interval:
      // while revocations are re-signed, the CRL shards they dirtied wait (a few seconds) for the HSM.
      if (revocations.busy) return false;
      if (publisher && (await canWrite())) await publisher.publishDue();
      const refreshed = await refresher.refreshExpiring();
      const produced = await preProducer.preProduceNew();
      // The active site seals its audit log every few seconds (hash chain + checkpoint outside the database).
      if (Date.now() - lastSeal > 5_000 && (await canWrite())) {
        lastSeal = Date.now();
        const seal = await sealAuditLog(status.pool, auditCheckpointFile(config.deploymentDir), { ...(await signerForSeals()) });
        if (seal.gaps.length) app.log.warn({ gaps: seal.gaps }, 'audit log: seq numbers with no row sealed over (a rolled-back insert leaves such a hole; `fleetpki audit verify` tells a removed row apart)');
      }
      // A backlog (a full pass's worth: a batch issued while this site was busy, responses nearing
      // nextUpdate) is worked off pass after pass without the pause; less than that waits for the next
      // pass as usual (passes back to back that each find a few rows keep PostgreSQL and this process
      // busy for little signing, beside a batch issuing on the same cores). Pre-production yields to
      // revocations (OcspResponder.preProduceNew).
      return refreshed >= OCSP_PASS_LIMITS.refresh || produced >= OCSP_PASS_LIMITS.preProduce;
    };
    let lastSeal = 0;
    // Seals are signed by this site's audit key (made and certified on first use). Without one they are
    // still sealed, and `audit verify` reports them as unsigned: better seen than silently unsealed.
    let auditSigner: AuditSigner | undefined;
    let auditKeyWarned = false;
    const signerForSeals = async (): Promise<{ signer?: AuditSigner }> => {
      if (!auditSigner && keyStore) {
        try {
          auditSigner = await ensureAuditKey(status.pool, keyStore, site.id, `status-responder:${site.id}`);
        } catch (err) {
          if (!auditKeyWarned) app.log.warn({ code: (err as { code?: string }).code, message: (err as Error).message }, 'no audit key: seals are not signed');
          auditKeyWarned = true;
        }
      }
      return auditSigner ? { signer: auditSigner } : {};
    };
    const everyMs = options.tickEveryMs ?? 500;
    const loops =
      options.tickEveryMs === 0
        ? []
        : [
            new BackgroundLoop('revocations', applyRevocations, Math.min(everyMs, 200), app.log),
            new BackgroundLoop('status upkeep', upkeep, everyMs, app.log),
          ];
    const tick = async () => {
      await applyRevocations();
      await upkeep();
    };

    return {
      app,
      ocsp,
      revocations,
      preProducer,
      refresher,
      publisher,
      tick,
      async close() {
        // A pass still signing must finish before the HSM session goes away under it.
        await Promise.all(loops.map((l) => l.stop()));
        await app.close();
        await status.close();
      },
    };
  } catch (err) {
    await status.close();
    throw err;
  }
}
