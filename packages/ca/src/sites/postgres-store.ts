import type { DatabaseClient, FleetConfig, SiteId } from '@fleetpki/core';
import { AdvisoryLeadership, LeaseConnection, appendAuditEvents, createPool, isInRecovery, isPool, listCas, listRootLinks, openServicePool, pgLinkSecurity, pgLinkSecurityForUrl, readSiteStates, syncStandbyState, withTransaction, type Pool, type SessionWaits } from '@fleetpki/store';
import type { JobLeadership, LeaseDatabase, SiteStore } from './store.js';

/** The sites ports on the site's PostgreSQL database: the only file of sites/ that calls the store. */
export function postgresSiteStore(pool: Pool): SiteStore {
  return {
    isInRecovery: () => isInRecovery(pool),
    syncStandbyState: () => syncStandbyState(pool),
    listCas: () => listCas(pool),
    rootLinks: () => listRootLinks(pool),
    readSiteStates: () => readSiteStates(pool),
    appendAuditLocally: (event) =>
      withTransaction(pool, async (client) => {
        await client.query('SET LOCAL synchronous_commit = local');
        await appendAuditEvents(client, [event]);
      }),
  };
}

/**
 * Transitional: the guards take their port, and for callers not yet moved (other services, tests) a
 * pool, which is wrapped here (isPool tells them apart).
 */
export function siteStoreOf<S>(source: S | Pool): S {
  return isPool(source) ? (postgresSiteStore(source) as S) : source;
}

/** SiteLease's own connection (not from a pool: it must answer when the pools are exhausted). */
export function openLeaseDatabase(config: FleetConfig, connectionString: string, site: SiteId): LeaseDatabase {
  return new LeaseConnection(connectionString, `fleetpki-lease-${site}`, 2_000, pgLinkSecurityForUrl(config, connectionString));
}

/** A service's pool to its site's database, checked to reach the configured database (openServicePool). */
export function openSitePool(config: FleetConfig, service: DatabaseClient, max: number, options: { purpose?: string; idleInTransactionTimeoutMs?: number; waits?: SessionWaits } = {}): Promise<Pool> {
  return openServicePool(config, service, max, options);
}

/** The daemons' job leadership: advisory locks on a connection of its own to the site's database, as `service`. */
export async function openJobLeadership(config: FleetConfig, service: DatabaseClient): Promise<JobLeadership> {
  return new AdvisoryLeadership(await openSitePool(config, service, 1, { purpose: 'daemon-leadership' }));
}

/**
 * The command line's pool: the operators' role (what ceremonies, custody, keys and TLS need; people,
 * tokens and approvals only through the database's rule functions), or with `owner` the database
 * owner's, for migrations and the audited owner-only paths (bootstrap, recovery).
 */
export function openOperatorPool(config: FleetConfig, options: { owner?: boolean } = {}): Pool {
  const site = config.sites[config.site];
  return createPool(options.owner ? site.databaseUrl : site.serviceDatabaseUrls.operator, { applicationName: options.owner ? 'fleetpki-cli-owner' : 'fleetpki-cli', max: 4, security: pgLinkSecurity(config, options.owner ? 'owner' : 'operator') });
}
