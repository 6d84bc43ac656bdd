import { openStatusSite, type StatusSite } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { STATUS_JOBS, openSiteDaemons, type SiteDaemons } from '@fleetpki/daemons';
import { createStatusRuntime, type StatusRuntime } from '@fleetpki/status-responder';

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
