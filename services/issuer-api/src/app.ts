import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import cookie from '@fastify/cookie';
import { requestIdFrom, withRequestId, type FleetConfig } from '@fleetpki/core';
import { AccessAdministration, BatchIntake, countedEnrolmentStore, BatchReads, CaStatusGuard, CertificateReads, ClientCertificateAuthenticator, CmpAuthBudget, CmpSecretAdministration, CmpServer, CmpSharedSecrets, ConsoleSessions, DEFAULT_BATCH_LIMITS, DeviceKeyService, DualControl, enrolmentLabel, EnrolmentRequestDecisions, EnrolmentService, ensureCmpProtectionKey, EstEnrolment, FailoverDrills, openSiteRuntime, OperatorReads, postgresAccessStore, postgresAuditStore, postgresBatchIntakeStore, postgresCmpStore, postgresConsoleSessions, postgresEnrolmentRequestStore, postgresEnrolmentStore, postgresManifestKeyStore, postgresStatusStore, RawKeyStatements, RevocationService, SiteGuard, TokenAuthenticator, UploadAdmission, type BatchLimits, type IssuingCa, type RootCaKeyUpdate, type SiteLease } from '@fleetpki/ca';
import type { KeyStore } from '@fleetpki/hsm';
import { assertRedisLink, ChunkQueue, redisLink } from '@fleetpki/queue';
import type { Pool } from '@fleetpki/store';
import { PossessionThreads, inlinePossessionVerifier, readStrictPem, toPem, type PossessionVerifier } from '@fleetpki/x509';
import { ApiAccess } from './auth.js';
import { installErrorHandling } from './errors.js';
import { installRateLimits, installSecurityHeaders } from './hardening.js';
import { installMetrics } from './metrics.js';
import { installWriteDeadline } from './write-deadline.js';
import { apiServerTls, type TlsMaterial } from './server-tls.js';
import { registerBatchRoutes } from './routes/batches.js';
import { registerCertificateRoutes } from './routes/certificates.js';
import { registerEnrolmentRoutes } from './routes/enrolments.js';
import { registerApprovalRoutes } from './routes/approvals.js';
import { registerRevocationRoutes } from './routes/revocations.js';
import { hsmProbe, registerSystemRoutes } from './routes/system.js';
import { registerOverviewRoutes } from './routes/overview.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerDrillRoutes } from './routes/drills.js';
import { registerConsole } from './console/routes.js';
import { registerTokenRoutes } from './routes/tokens.js';
import { registerEstRequestRoutes, registerEstRoutes } from './routes/est.js';
import { registerCmpRoutes, registerCmpSecretRoutes } from './routes/cmp.js';
import { PbmThreads, type PbmComputer } from '@fleetpki/cmp';

/** A value computed once when first asked for; a failure is not kept (the next call tries again). */
function memoise<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= make().catch((err: unknown) => {
    value = undefined;
    throw err;
  }));
}

export interface IssuerApiDeps {
  readonly config: FleetConfig;
  /** The general pool: enrolment, batches' reads, tokens, the console. */
  readonly pool: Pool;
  /**
   * Revocation, approvals, certificate lookups, the site guard and /readyz: a pool of their own, so they
   * never wait behind the rest (default: the general pool, for tests that build the app alone).
   */
  readonly reservedPool?: Pool;
  /** Manifest uploads, whose transactions last as long as a factory takes to send (default: the general pool). */
  readonly uploadPool?: Pool;
  readonly ca: IssuingCa;
  /** The site's HSM key store: device keys are diversified and wrapped in it. */
  readonly keyStore: KeyStore;
  readonly chainPem: string;
  /**
   * The root generations' updates (CMP rootCaKeyUpdate) and what EST /cacerts returns with them
   * (SiteIssuer): default none, and the issuing CA and its root from chainPem.
   */
  readonly rootUpdates?: readonly RootCaKeyUpdate[];
  readonly caCertificates?: readonly Buffer[];
  readonly serialPrefix: number;
  /** The site's chunk queue (batch uploads queue their chunks; the daemons' batch-outbox job would anyway). */
  readonly queue: ChunkQueue;
  /** Upload limits for manifests (defaults: DEFAULT_BATCH_LIMITS). */
  readonly batchLimits?: BatchLimits;
  /** false for none; or a level and an optional stream (tests read the log to check what it leaks). */
  readonly logger?: boolean | { level: string; stream?: NodeJS.WritableStream };
  /** HTTPS: the server's key and certificate chain, and the CAs whose client certificates are accepted. */
  readonly tls?: TlsMaterial;
  /** The site's lease (issuance needs it held); absent only in tests that build the app alone. */
  readonly lease?: SiteLease;
  /** Where CSRs' proofs of possession are checked (PossessionThreads); on the main thread when absent. */
  readonly possession?: PossessionVerifier;
  /** Where CMP's password-based MACs are computed (PbmThreads); on the main thread when absent. */
  readonly pbm?: PbmComputer;
}

/** The HTTP application; every dependency is passed in (tests and benchmarks build it the same way). */
export async function buildIssuerApi(deps: IssuerApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // Client certificates are asked for, not required: token clients keep working over the same port.
    // Trusted for client certificates: the organisation CA (people, factories) and the issuing CA (devices
    // re-enrolling over EST with their current certificate; only that route accepts them).
    ...(deps.tls ? { https: { ...apiSecureContext(deps.tls, deps.chainPem), requestCert: true, rejectUnauthorized: false } } : {}),
    // Tokens and cookies never reach the log, whichever logger the caller chose.
    logger: deps.logger === false ? false : { level: deps.config.logLevel, ...(typeof deps.logger === 'object' ? deps.logger : {}), redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-manifest-signature"]'] },
    bodyLimit: 64 * 1024,
    // Unknown fields are refused, not silently dropped (fastify's default): a typo must not pass unseen.
    // coerceTypes true, not fastify's 'array': "5" may become 5 in a query string, but [[null]] is not a
    // reason and "x" is not a list; bad input is refused, never reshaped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
    // Keep-alive clients (factory lines) reuse connections; the default 72 s suits load balancers.
    keepAliveTimeout: 72_000,
    // No request takes longer to arrive than the longest upload may (fastify's default is no limit at
    // all); uploads have their own, tighter deadlines (routes/batches.ts).
    requestTimeout: (deps.config.uploads.maxSeconds + 60) * 1000,
    // A request id that means something outside this process: the client's X-Request-Id when plain,
    // else a UUID (fastify's default counts from 1 in every process). Logged with each line, returned
    // as X-Request-Id, written into the audit rows of the request and carried into its batch's chunks.
    genReqId: (request) => requestIdFrom(request.headers['x-request-id']),
  });
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    withRequestId(request.id, done);
  });
  const reservedPool = deps.reservedPool ?? deps.pool;
  const uploadPool = deps.uploadPool ?? deps.pool;
  installErrorHandling(app);
  installSecurityHeaders(app, { https: deps.tls !== undefined });
  await installRateLimits(app, deps.config.api.rateLimitPerMinute);
  await app.register(swagger, {
    openapi: {
      info: { title: 'fleetpki issuer API', version: '1', description: 'Online enrolment and certificate queries for device certificates. Errors are { code, message } with a stable code.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API token from `pnpm fleetpki tokens create`' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const metrics = installMetrics(app, deps.config.site, deps.lease, deps.config.sites[deps.config.site].metrics.scrapers);
  // Cookies are read for console sessions only (ApiAccess); every other credential is a header or TLS.
  await app.register(cookie);
  const accessStore = postgresAccessStore(deps.pool);
  const reservedAccessStore = postgresAccessStore(reservedPool);
  const sessions = new ConsoleSessions(postgresConsoleSessions(deps.pool), deps.config.console);
  const authenticator = new ApiAccess(new TokenAuthenticator(accessStore), accessStore, deps.config.site, { failedAuthPerMinute: deps.config.api.failedAuthPerMinute, sessions });
  // Revocation, status and health authenticate, read and write over the reserved pool.
  const reservedAccess = authenticator.over(reservedAccessStore, new ConsoleSessions(postgresConsoleSessions(reservedPool), deps.config.console));
  // The other site is named with this one's scheme: both sites serve the API the same way. Every route
  // asks the guard (a few small queries a second at most): on the reserved pool, so that a busy general
  // pool never keeps a revocation, or /readyz, waiting on it.
  const guard = new SiteGuard(reservedPool, deps.config, deps.lease);
  installWriteDeadline(app, guard, deps.config.writeWaitMs);
  guard.onWritesBlocked = (blocked) => {
    metrics.writesBlocked(blocked !== undefined);
    if (blocked) app.log.error({ since: blocked.since }, 'writes blocked: the synchronous standby is unreachable; writes answer 503 STANDBY_UNAVAILABLE');
    else app.log.warn('writes flow again: the synchronous standby is back');
  };
  // A held label is the label's, whatever the protocol (a typo in the configuration stops the start, named).
  const heldLabels = deps.config.enrolmentHolds.labels.map((name) => enrolmentLabel(name));
  const caGuard = new CaStatusGuard(deps.pool);
  const enrolment = new EnrolmentService(deps.ca, countedEnrolmentStore(postgresEnrolmentStore(deps.pool), metrics.issuance), deps.config.site, deps.serialPrefix, { site: guard, ca: caGuard }, {
    intentTimeoutSeconds: deps.config.intentTimeoutSeconds,
    holds: { labels: heldLabels, retryAfterSeconds: deps.config.enrolmentHolds.retryAfterSeconds },
    // Crash tests only: die between the intent's commit and the signature, as a process could.
    ...(process.env.FLEETPKI_TEST_CRASH_AFTER_INTENT === '1' ? { afterIntent: () => process.kill(process.pid, 'SIGKILL') } : {}),
  });
  const revocations = new RevocationService(postgresStatusStore(deps.pool), deps.config.site);
  const deviceKeys = new DeviceKeyService(deps.pool, deps.keyStore, deps.config.site, { concurrency: deps.config.deviceKeyBundles.concurrency, maxMs: deps.config.deviceKeyBundles.maxSeconds * 1000 });
  const possession = deps.possession ?? inlinePossessionVerifier;
  registerEnrolmentRoutes(app, { enrolment, deviceKeys, rawKeys: new RawKeyStatements(postgresManifestKeyStore(deps.pool), possession), authenticator, metrics, possession });
  registerCertificateRoutes(app, { certificates: CertificateReads.forPool(reservedPool), authenticator: reservedAccess });
  const chain = deps.chainPem.split(/(?<=-----END CERTIFICATE-----\n)/).filter((p) => p.includes('BEGIN'));
  const chainDer = chain.map((pem) => readStrictPem(pem, ['CERTIFICATE'], 'the CA chain'));
  registerEstRoutes(app, { est: new EstEnrolment({ enrolment, guard, caGuard, caId: deps.ca.record.id, possession }), authenticator, metrics, caCertificates: deps.caCertificates ?? chainDer });
  registerEstRequestRoutes(app, { requests: new EnrolmentRequestDecisions(postgresEnrolmentRequestStore(deps.pool, deps.config.site), guard), authenticator });
  const cmpSecrets = new CmpSharedSecrets(deps.pool, deps.keyStore, deps.config.site);
  const cmpStore = postgresCmpStore(deps.pool, deps.config.site);
  registerCmpSecretRoutes(app, { secrets: new CmpSecretAdministration(cmpSecrets, cmpStore, guard), authenticator });
  registerCmpRoutes(app, {
    access: authenticator,
    budget: new CmpAuthBudget(deps.config.cmp.authBudget),
    server: new CmpServer({
      config: deps.config,
      enrolment,
      revocations,
      possession,
      secrets: cmpSecrets,
      protectionKey: memoise(() => ensureCmpProtectionKey(deps.pool, deps.keyStore, deps.config.site, `issuer-api:${deps.config.site}`)),
      clientCertificates: new ClientCertificateAuthenticator(deps.pool),
      store: cmpStore,
      guard,
      caGuard,
      caId: deps.ca.record.id,
      chainDer,
      rootUpdates: deps.rootUpdates ?? [],
      threshold: { certificates: deps.config.dualControl.revocationThreshold, windowMinutes: deps.config.dualControl.revocationWindowMinutes },
      onIssued: (profile, keyRole) => metrics.issuance.issued(profile, keyRole),
      ...(deps.pbm ? { pbm: deps.pbm } : {}),
    }),
  });
  const uploads = deps.config.uploads;
  registerBatchRoutes(app, {
    reads: BatchReads.forPool(deps.pool),
    intake: new BatchIntake(postgresBatchIntakeStore(uploadPool), deps.config.site, deps.batchLimits ?? DEFAULT_BATCH_LIMITS, heldLabels),
    // As many uploads at once as their pool has connections: none ever waits for one.
    admission: new UploadAdmission({ total: uploads.connections, perManufacturer: uploads.perManufacturer, retryAfterSeconds: 10 }),
    uploads,
    queue: deps.queue,
    authenticator,
    guard,
    chainPem: chain,
    deviceKeys,
  });
  const hsm = hsmProbe(deps.ca, deps.keyStore);
  registerSystemRoutes(app, { guard, chainPem: deps.chainPem, ca: deps.ca, site: deps.config.site, hsm });
  registerOverviewRoutes(app, { config: deps.config, reads: new OperatorReads(accessStore), guard, ca: deps.ca, queue: deps.queue, hsm, authenticator });
  registerAuditRoutes(app, { audit: postgresAuditStore(deps.pool), deploymentDir: deps.config.deploymentDir, authenticator });
  const dualControl = new DualControl(accessStore, deps.config.site, deps.config.dualControl.approvalTtlMinutes);
  registerDrillRoutes(app, { config: deps.config, drills: new FailoverDrills(accessStore, deps.config.site, dualControl), authenticator, guard });
  // Revocation must never queue behind a factory, nor behind enrolments: its own connections.
  const reservedRevocations = new RevocationService(postgresStatusStore(reservedPool), deps.config.site);
  const reservedDualControl = new DualControl(reservedAccessStore, deps.config.site, deps.config.dualControl.approvalTtlMinutes);
  registerRevocationRoutes(app, { revocations: reservedRevocations, dualControl: reservedDualControl, threshold: { certificates: deps.config.dualControl.revocationThreshold, windowMinutes: deps.config.dualControl.revocationWindowMinutes }, authenticator: reservedAccess, guard });
  registerApprovalRoutes(app, { people: new AccessAdministration(reservedAccessStore, deps.config.site, reservedDualControl), dualControl: reservedDualControl, revocations: reservedRevocations, authenticator: reservedAccess, guard });
  registerTokenRoutes(app, { authenticator, access: new AccessAdministration(accessStore, deps.config.site, dualControl) });
  await registerConsole(app, { access: authenticator, tls: deps.tls !== undefined, drills: deps.config.console.drills });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

export interface IssuerRuntime {
  readonly app: FastifyInstance;
  /** The general pool (IssuerApiDeps.pool). */
  readonly pool: Pool;
  readonly keyStore: KeyStore;
  /**
   * Reads tls.api again (a rotated pair) and serves it to new connections; throws, changing nothing, if
   * it is unusable; false when the API serves plain HTTP. A runtime built with `options.tls` (tests,
   * benches) reloads from the configuration's tls.api all the same.
   */
  reload(): boolean;
  close(): Promise<void>;
}

/** Wires config -> database, HSM, issuing CA -> app. Refuses to start when the CA key does not match. */
export async function createIssuerRuntime(config: FleetConfig, options: { logger?: IssuerApiDeps['logger']; hsmSessions?: number; poolSize?: number; batchLimits?: BatchLimits; tls?: TlsMaterial } = {}): Promise<IssuerRuntime> {
  // A missing or mismatched server key stops the API first, named (API_TLS_MATERIAL, TLS_MISSING).
  const tls = options.tls ?? apiServerTls(config);
  // Pools (general; reserved for revocations, approvals and the guard; uploads), lease, guard, HSM, issuing CA.
  // PostgreSQL ends an upload's transaction itself if it sits idle well past the upload's own deadline.
  const site = await openSiteRuntime(config, {
    service: 'issuer',
    pool: { max: options.poolSize ?? config.api.connections },
    pools: { reserved: { max: config.api.reservedConnections }, uploads: { max: config.uploads.connections, idleInTransactionTimeoutMs: (config.uploads.idleSeconds + 60) * 1000 } },
    guardPool: 'reserved',
    hsm: { sessions: options.hsmSessions ?? 4, signingThreads: config.signing.threads },
  });
  const { pool, keyStore, lease } = site;
  const { ca, root, serialPrefix, rootUpdates, caCertificates } = site.issuer;
  const possession = PossessionThreads.start(config.possessionThreads);
  const pbm = PbmThreads.start(config.cmp.pbmThreads);
  const stop = async () => {
    await possession.close();
    await pbm.close();
    await site.close();
  };
  try {
    // A wrong Redis password or CA stops the API here, not at the first batch.
    const link = redisLink(config, config.sites[config.site], 'issuer-api');
    await assertRedisLink(link);
    const queue = new ChunkQueue(link, config.pgDatabase);
    const chainPem = toPem(ca.record.certificate) + toPem(root.certificate);
    const app = await buildIssuerApi({ config, pool, reservedPool: site.pools.reserved, uploadPool: site.pools.uploads, ca, keyStore, queue, lease, possession, pbm, chainPem, rootUpdates, caCertificates, serialPrefix, ...(options.batchLimits ? { batchLimits: options.batchLimits } : {}), ...(tls ? { tls } : {}), ...(options.logger !== undefined ? { logger: options.logger } : {}) });
    return {
      app,
      pool,
      keyStore,
      reload() {
        if (!tls) return false;
        const next = apiServerTls(config);
        if (!next) return false;
        (app.server as HttpsServer).setSecureContext(apiSecureContext(next, chainPem));
        return true;
      },
      async close() {
        await app.close();
        await queue.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The API's TLS context: its pair, and whose client certificates it accepts (the organisation CA, and its own chain for devices'). */
function apiSecureContext(tls: TlsMaterial, chainPem: string) {
  return { key: tls.key, cert: tls.cert, ca: [tls.clientCa, Buffer.from(chainPem)], minVersion: 'TLSv1.2' as const };
}

export { apiServerTls, readTlsMaterial, type TlsMaterial } from './server-tls.js';
