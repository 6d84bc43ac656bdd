import type { SiteId } from '@fleetpki/core';
import type { SiteStateRecord } from '@fleetpki/store';
import type { SiteAuditStore, SiteStateStore } from './store.js';

/** This site's row of site_state (role, epoch, serial prefix), or undefined before `db migrate`. */
export async function readSiteState(store: SiteStateStore, site: SiteId): Promise<SiteStateRecord | undefined> {
  return (await store.readSiteStates()).find((s) => s.site === site);
}

/**
 * A site operation done from the command line (failover, unprotect, protect), in the audit log of
 * `site`: committed there alone, so it is recorded even while the synchronous standby is away.
 */
export async function recordSiteOperation(store: SiteAuditStore, site: SiteId, actor: string, action: string, details: Record<string, unknown>): Promise<void> {
  await store.appendAuditLocally({ site, actor, action, subject: site, details });
}
