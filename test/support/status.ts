import { openStatusSite, type StatusSite } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { STATUS_JOBS, openSiteDaemons, type SiteDaemons } from '@fleetpki/daemons';
import { createStatusRuntime, type StatusRuntime } from '@fleetpki/status-responder';
import type { Pool } from '@fleetpki/store';

/**
 * A site's status side in the test process, as production runs it in two: the status responder
 * (answers OCSP, serves CRLs, watches revocations) and the site's daemons (CRL publisher, OCSP
 * pre-producer and refresher, audit sealer; `daemons` adds reconcilers or picks fewer). With tickEveryMs 0 nothing runs by itself: `tick()` is one
 * revocation pass of the responder and then one pass of each daemon, as the responder's single
 * background pass was before the daemons were separate. Both share one StatusSite (one lease, one
 * HSM session pool), as the responder alone had in the test process before.
 */
export interface StatusSiteRuntime extends Pick<StatusRuntime, 'app' | 'ocsp' | 'revocations'>, Pick<SiteDaemons, 'publisher' | 'preProducer' | 'refresher'> {
  readonly site: StatusSite;
  readonly responder: StatusRuntime;
  readonly daemons: SiteDaemons;
  tick(): Promise<void>;
  close(): Promise<void>;
}

export async function createStatusSite(config: FleetConfig, options: { logger?: boolean; tickEveryMs?: number; daemons?: readonly string[] } = {}): Promise<StatusSiteRuntime> {
  const site = await openStatusSite(config, { connections: 8 });
  let responder: StatusRuntime | undefined;
  let daemons: SiteDaemons;
  try {
    responder = await createStatusRuntime(config, { ...options, site });
    daemons = await openSiteDaemons(config, { site, logger: options.logger ?? false, ...(options.tickEveryMs ? { everyMs: options.tickEveryMs } : {}), only: options.daemons ?? STATUS_JOBS });
  } catch (err) {
    await responder?.close();
    await site.close();
    throw err;
  }
  if (options.tickEveryMs !== 0) daemons.start();
  const status = responder;
  return {
    site,
    responder: status,
    daemons,
    app: status.app,
    ocsp: status.ocsp,
    revocations: status.revocations,
    publisher: daemons.publisher,
    preProducer: daemons.preProducer,
    refresher: daemons.refresher,
    async tick() {
      await status.tick();
      await daemons.runOnce();
    },
    async close() {
      await daemons.close();
      await status.close();
      await site.close();
    },
  };
}

/**
 * Runs the site's OCSP pre-producer until every one of `serials` (hex) has a stored SHA-1 response. A
 * site opened here walks the certificates from the oldest (as a daemon starting on a real site does),
 * so in a database the rest of the suite has filled one pass of 2 s may not reach a test's own devices.
 */
export async function preProduceFor(status: Pick<StatusSiteRuntime, 'preProducer'>, pool: Pool, serials: readonly string[]): Promise<void> {
  const wanted = serials.map((s) => Buffer.from(s, 'hex'));
  for (let pass = 0; pass < 200; pass++) {
    await status.preProducer!.preProduceNew({ settleMs: 0, limit: 20_000, budgetMs: 10_000 });
    const { rows } = await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ocsp_responses WHERE hash_alg = 'sha1' AND serial = ANY($1::bytea[])`, [wanted]);
    if (Number(rows[0]!.n) === wanted.length) return;
  }
  throw new Error(`the pre-producer did not reach ${serials.join(', ')} in 200 passes`);
}
