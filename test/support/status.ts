import type { FleetConfig } from '@fleetpki/core';
import { openSiteDaemons, type SiteDaemons } from '@fleetpki/daemons';
import { createStatusRuntime, type StatusRuntime } from '@fleetpki/status-responder';

/**
 * A site's status side in the test process, as production runs it in two: the status responder
 * (answers OCSP, serves CRLs, watches revocations) and the site's daemons (CRL publisher, OCSP
 * pre-producer and refresher, audit sealer). With tickEveryMs 0 nothing runs by itself: `tick()` is one
 * revocation pass of the responder and then one pass of each daemon, as the responder's single
 * background pass was before the daemons were separate.
 */
export interface StatusSiteRuntime extends Pick<StatusRuntime, 'app' | 'ocsp' | 'revocations'>, Pick<SiteDaemons, 'publisher' | 'preProducer' | 'refresher'> {
  readonly responder: StatusRuntime;
  readonly daemons: SiteDaemons;
  tick(): Promise<void>;
  close(): Promise<void>;
}

export async function createStatusSite(config: FleetConfig, options: { logger?: boolean; tickEveryMs?: number; daemons?: readonly string[] } = {}): Promise<StatusSiteRuntime> {
  const responder = await createStatusRuntime(config, options);
  let daemons: SiteDaemons;
  try {
    daemons = await openSiteDaemons(config, { logger: options.logger ?? false, ...(options.tickEveryMs ? { everyMs: options.tickEveryMs } : {}), ...(options.daemons ? { only: options.daemons } : {}) });
  } catch (err) {
    await responder.close();
    throw err;
  }
  if (options.tickEveryMs !== 0) daemons.start();
  return {
    responder,
    daemons,
    app: responder.app,
    ocsp: responder.ocsp,
    revocations: responder.revocations,
    publisher: daemons.publisher,
    preProducer: daemons.preProducer,
    refresher: daemons.refresher,
    async tick() {
      await responder.tick();
      await daemons.runOnce();
    },
    async close() {
      await daemons.close();
      await responder.close();
    },
  };
}
