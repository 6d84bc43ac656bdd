import type { FastifyInstance } from 'fastify';
import { isFleetError, InternalHttps, type FleetConfig, type SiteId } from '@fleetpki/core';
import type { IssuingCa, OperatorReads, SiteGuard } from '@fleetpki/ca';
import type { ChunkQueue } from '@fleetpki/queue';
import { type ApiAccess, requireRole } from '../auth.js';
import type { hsmProbe } from './system.js';

/**
 * The other site as its own /readyz says, or why it did not answer (within a second: an overview must not
 * hang on a dead site). Over https its certificate is checked against the configured bundle; one it does
 * not vouch for shows as API_TLS_UNTRUSTED, which is not the same trouble as a site that is down.
 */
async function otherSite(config: FleetConfig, https: InternalHttps, id: SiteId): Promise<Record<string, unknown>> {
  const url = `${config.sites[id].apiUrl}/readyz`;
  try {
    const { body } = await https.json<Record<string, unknown>>('api', url, { timeoutMs: 1_000 });
    return { reachable: true, ...body };
  } catch (err) {
    return { site: id, reachable: false, status: 'unreachable', ...(isFleetError(err) ? { code: err.code } : {}), message: `${url}: ${(err as Error).message}` };
  }
}

/**
 * GET /v1/overview: what an operator checks first, in one answer: both sites (role, lease, HSM, writes),
 * the CA's status publication (CRL shards' age and next update, OCSP pre-production backlog) and the
 * batch queue. The console's overview page is this, rendered.
 */
export function registerOverviewRoutes(app: FastifyInstance, deps: { config: FleetConfig; reads: OperatorReads; guard: SiteGuard; ca: IssuingCa; queue: ChunkQueue; hsm: ReturnType<typeof hsmProbe>; authenticator: ApiAccess }): void {
  const https = new InternalHttps(deps.config);
  app.get(
    '/v1/overview',
    { preParsing: requireRole(deps.authenticator, ['revocation-officer', 'auditor', 'administrator', 'custodian']), schema: { summary: 'Sites, CA status publication and the batch queue at a glance', tags: ['system'], security: [{ bearer: [] }] } },
    async () => {
      const self = deps.config.site;
      const [standby, key, blocked, publication, backlog, other, database, workers] = await Promise.all([
        deps.guard.isStandby(),
        deps.hsm(),
        deps.guard.writesBlocked().catch(() => undefined),
        deps.reads.statusPublication(deps.ca.record.id),
        deps.queue.backlog().catch(() => null),
        otherSite(deps.config, https, self === 'a' ? 'b' : 'a'),
        deps.reads.databaseRole().catch(() => undefined),
        deps.queue.workers().catch(() => null),
      ]);
      const lease = deps.guard.lease?.state();
      return {
        site: { site: self, reachable: true, role: standby ? 'standby' : 'active', issuing: !standby && (lease?.issuing ?? true), lease: lease ?? null, hsm: key, writesBlockedSince: blocked?.since.toISOString() ?? null },
        // Replication as this site's database sees it: its standbys (on a primary) or its own replay lag.
        replication: database
          ? {
              standbys: database.standbys.map((s) => ({ name: s.applicationName, state: s.state, sync: s.syncState, replayLagBytes: s.replayLagBytes, replayLagSeconds: s.replayLagSeconds })),
              replayLagBytes: database.replayLagBytes,
              lastReplaySecondsAgo: database.lastReplaySecondsAgo,
            }
          : null,
        otherSite: other,
        ca: {
          id: deps.ca.record.id,
          crl: { shards: publication.crlShards, entries: publication.crlEntries, oldestThisUpdate: publication.oldestCrlThisUpdate?.toISOString() ?? null, earliestNextUpdate: publication.earliestCrlNextUpdate?.toISOString() ?? null },
          ocsp: { notPreProducedLastDay: publication.ocspNotPreProduced, revocationsNotResignedLastDay: publication.ocspRevocationsNotResigned },
        },
        queue: { chunksWaiting: backlog, workers },
      };
    },
  );
}
