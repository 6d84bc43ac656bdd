import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import client from 'prom-client';
import { CA_IDS, OcspAnswerCache, OcspCacheWarmer, OcspResponder, OcspRevocationResigner, ocspCacheFeedJob, ocspRevocationsJob, openStatusSite, type OcspAnswer, type StatusSite } from '@fleetpki/ca';
import { Daemon, type FleetConfig } from '@fleetpki/core';

/** Largest OCSP request accepted (a few CertIDs; RFC 6960 requests are ~100 bytes). */
const MAX_OCSP_REQUEST = 4 * 1024;

export interface StatusRuntime {
  readonly app: FastifyInstance;
  readonly ocsp: OcspResponder;
  /** Notices revocations for the cache and re-signs them (kept in this process: see OcspRevocationResigner). */
  readonly revocations: OcspRevocationResigner;
  /** The revocation watcher's daemon (its stats are in /metrics). */
  readonly revocationDaemon: Daemon;
  /** Fills the cache from the store: the warm-up at start and the feed of what the daemons store since. */
  readonly warmer: OcspCacheWarmer;
  /** One pass of the revocation watcher, then one of the cache's feed (tests with tickEveryMs 0 drive them with this). */
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
 * URLs, from the site's own database (a hot standby on site B). It answers and serves only: CRLs,
 * pre-produced and refreshed OCSP responses and audit seals come from the site's daemons
 * (services/daemons). What stays here is noticing revocations (its cache must drop them, and a request
 * for one being re-signed waits for that signature), so a relying party sees a revocation within a
 * second. Without the CA key in this site's HSM it serves what is stored.
 *
 * Its cache is warmed from the store at start and then follows what the daemons store (OcspCacheWarmer).
 * Neither /healthz nor anything else waits for the warm-up: a cold responder answers correctly from the
 * store, only with a database read per first request, so holding it out of service would turn a
 * slower answer into none (on a failover, site B's responders are the only ones answering). The
 * warm-up is bounded by the cache's size and a time budget; /healthz and /metrics show its progress.
 */
export async function createStatusRuntime(config: FleetConfig, options: { logger?: boolean; tickEveryMs?: number; site?: StatusSite } = {}): Promise<StatusRuntime> {
  // A site opened by the caller (tests share one with the daemons) stays the caller's to close.
  const status = options.site ?? (await openStatusSite(config, { connections: 8 }));
  const closeSite = options.site ? async () => undefined : () => status.close();
  const { store, lease, signing } = status;
  try {
    const canWrite = () => status.canAct();
    const cache = new OcspAnswerCache();
    const revocations = new OcspRevocationResigner(store, status.caId, signing, cache, canWrite);
    revocations.startWatchingFrom(new Date());
    const ocsp = new OcspResponder(store, status.caId, status.issuer, signing, canWrite, cache, { vouching: () => lease.state().vouching, onDemand: config.ocspOnDemand, revocations });
    const warmer = new OcspCacheWarmer(store, status.caId, status.issuer, cache);

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
    app.get('/healthz', async () => ({ status: 'ok', signing: signing !== undefined, lease: lease.state(), cache: { entries: cache.size, ...warmer.status } }));
    app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));

    // Revocations are watched on every site, leader or not: a standby's cache must drop them too.
    const revocationDaemon = new Daemon(ocspRevocationsJob(revocations, app.log, Math.min(options.tickEveryMs ?? 200, 200)), { log: app.log });
    // The feed too runs on every site: a standby's responders serve what the active site's daemons produce.
    const feedDaemon = new Daemon(ocspCacheFeedJob(warmer, Math.min(options.tickEveryMs ?? 250, 250)), { log: app.log });
    new client.Gauge({
      name: 'fleetpki_daemon_passes',
      help: "Passes of this process's daemons (the revocation watcher, the cache's feed), by outcome",
      labelNames: ['daemon', 'outcome'] as const,
      registers: [registry],
      collect() {
        for (const s of [revocationDaemon.stats, feedDaemon.stats]) {
          this.set({ daemon: s.name, outcome: 'ok' }, s.passes);
          this.set({ daemon: s.name, outcome: 'failed' }, s.failures);
        }
      },
    });
    new client.Gauge({
      name: 'fleetpki_ocsp_cache_entries',
      help: 'Answers in the OCSP cache',
      registers: [registry],
      collect() {
        this.set(cache.size);
      },
    });
    new client.Gauge({
      name: 'fleetpki_ocsp_cache_loaded',
      help: 'Answers loaded into the OCSP cache from the store in bulk, by source (warm-up at start, feed)',
      labelNames: ['source'] as const,
      registers: [registry],
      collect() {
        this.set({ source: 'warm-up' }, warmer.status.warmedUp);
        this.set({ source: 'feed' }, warmer.status.followed);
      },
    });
    let warming: Promise<void> = Promise.resolve();
    if (options.tickEveryMs !== 0) {
      revocationDaemon.start();
      feedDaemon.start();
      // In the background: answering starts at once (see above).
      const started = Date.now();
      warming = warmer.warmUp().then(
        (loaded) => app.log.info({ loaded, ended: warmer.status.ended, ms: Date.now() - started }, 'OCSP cache warmed from the store'),
        (err: unknown) => app.log.warn({ err }, 'OCSP cache warm-up failed: answers are loaded on request'),
      );
    }

    return {
      app,
      ocsp,
      revocations,
      revocationDaemon,
      warmer,
      async tick() {
        await revocationDaemon.runOnce();
        await feedDaemon.runOnce();
      },
      async close() {
        // A pass still signing must finish before the HSM session goes away under it.
        warmer.stop();
        await Promise.all([revocationDaemon.stop(), feedDaemon.stop(), warming]);
        await app.close();
        await closeSite();
      },
    };
  } catch (err) {
    await closeSite();
    throw err;
  }
}
