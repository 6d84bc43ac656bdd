import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { OcspAnswerCache, OcspCacheWarmer, OcspResponder, OcspRevocationResigner, ocspCacheFeedJob, ocspRevocationsJob, openStatusSite, type StatusSite } from '@fleetpki/ca';
import { Daemon, readServerTls, type FleetConfig } from '@fleetpki/core';
import { observeHsm } from '@fleetpki/hsm';
import { collectedGauge, hsmMetrics, leaseMetrics, mayScrape, SCRAPE_FORBIDDEN, processRegistry, scraperList, statusMetrics } from '@fleetpki/metrics';
import { MAX_OCSP_REQUEST, installStatusErrors, refuseOperatorRoutes, registerStatusObjectRoutes } from './routes.js';

export interface StatusRuntime {
  /** Everything, over HTTPS when tls.status is set (else plain HTTP, on loopback only: see config). */
  readonly app: FastifyInstance;
  /**
   * With tls.status and sites.<id>.status.httpPort: OCSP and CRLs over plain HTTP, for devices and relying
   * parties (routes.ts says why); every other path answers 403 HTTPS_REQUIRED. Undefined otherwise.
   */
  readonly plainApp: FastifyInstance | undefined;
  readonly ocsp: OcspResponder;
  /** Notices revocations for the cache and re-signs them (kept in this process: see OcspRevocationResigner). */
  readonly revocations: OcspRevocationResigner;
  /** The revocation watcher's daemon (its stats are in /metrics). */
  readonly revocationDaemon: Daemon;
  /** Fills the cache from the store: the warm-up at start and the feed of what the daemons store since. */
  readonly warmer: OcspCacheWarmer;
  /** One pass of the revocation watcher, then one of the cache's feed (tests with tickEveryMs 0 drive them with this). */
  tick(): Promise<void>;
  /** Reads tls.status again (a rotated pair) and serves it to new connections; throws, changing nothing, if it is unusable; false when it serves plain HTTP. */
  reload(): boolean;
  close(): Promise<void>;
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
  // A missing or mismatched server key stops the start here, named (STATUS_TLS_MATERIAL), before the site opens.
  const serverTls = readServerTls(config, 'status');
  const own = config.sites[config.site];
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

    const registry = processRegistry('status-responder', config.site);
    observeHsm(hsmMetrics(registry));
    leaseMetrics(registry, () => lease.state());
    const { responses } = statusMetrics(registry, async () => ({ crls: await store.crlStates(), unsigned: await store.unsignedRevocations(), caIds: [status.caId] }));
    const logger = options.logger ?? { level: config.logLevel };
    const app = Fastify({ logger, bodyLimit: MAX_OCSP_REQUEST, ...(serverTls ? { https: { key: serverTls.key, cert: serverTls.cert, minVersion: 'TLSv1.2' as const } } : {}) });
    const objects = { ocsp, store, responses, maxAgeSeconds: config.ocspMaxAgeSeconds };
    installStatusErrors(app);
    registerStatusObjectRoutes(app, objects);
    const plainApp = serverTls && own.statusHttpPort !== undefined ? Fastify({ logger, bodyLimit: MAX_OCSP_REQUEST }) : undefined;
    if (plainApp) {
      installStatusErrors(plainApp);
      registerStatusObjectRoutes(plainApp, objects);
      refuseOperatorRoutes(plainApp, own.statusUrl);
    }
    app.get('/healthz', async () => ({ status: 'ok', signing: signing !== undefined, lease: lease.state(), cache: { entries: cache.size, ...warmer.status } }));
    const scrapers = scraperList(own.metrics.scrapers);
    app.get('/metrics', async (request, reply) => {
      if (!mayScrape(scrapers, request.socket.remoteAddress)) return reply.status(403).send(SCRAPE_FORBIDDEN);
      return reply.type(registry.contentType).send(await registry.metrics());
    });

    // Revocations are watched on every site, leader or not: a standby's cache must drop them too.
    const revocationDaemon = new Daemon(ocspRevocationsJob(revocations, app.log, Math.min(options.tickEveryMs ?? 200, 200)), { log: app.log });
    // The feed too runs on every site: a standby's responders serve what the active site's daemons produce.
    const feedDaemon = new Daemon(ocspCacheFeedJob(warmer, Math.min(options.tickEveryMs ?? 250, 250)), { log: app.log });
    // The same names as the daemons process's (services/daemons/src/metrics.ts), for this process's two.
    collectedGauge(registry, 'fleetpki_daemon_passes', 'Passes run to the end', ['daemon'], (set) => {
      for (const d of [revocationDaemon.stats, feedDaemon.stats]) set({ daemon: d.name }, d.passes);
    });
    collectedGauge(registry, 'fleetpki_daemon_failures', 'Passes that failed (logged)', ['daemon'], (set) => {
      for (const d of [revocationDaemon.stats, feedDaemon.stats]) set({ daemon: d.name }, d.failures);
    });
    collectedGauge(registry, 'fleetpki_ocsp_cache_entries', 'Answers in the OCSP cache', [], (set) => set({}, cache.size));
    collectedGauge(registry, 'fleetpki_ocsp_cache_loaded', 'Answers loaded into the OCSP cache from the store in bulk, by source (warm-up at start, feed)', ['source'], (set) => {
      set({ source: 'warm-up' }, warmer.status.warmedUp);
      set({ source: 'feed' }, warmer.status.followed);
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
      plainApp,
      ocsp,
      revocations,
      revocationDaemon,
      warmer,
      async tick() {
        await revocationDaemon.runOnce();
        await feedDaemon.runOnce();
      },
      reload() {
        if (!serverTls) return false;
        const next = readServerTls(config, 'status');
        if (!next) return false;
        (app.server as HttpsServer).setSecureContext({ key: next.key, cert: next.cert, minVersion: 'TLSv1.2' });
        return true;
      },
      async close() {
        // A pass still signing must finish before the HSM session goes away under it.
        warmer.stop();
        await Promise.all([revocationDaemon.stop(), feedDaemon.stop(), warming]);
        await app.close();
        await plainApp?.close();
        await closeSite();
      },
    };
  } catch (err) {
    await closeSite();
    throw err;
  }
}
