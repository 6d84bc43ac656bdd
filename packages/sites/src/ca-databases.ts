import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { createPool, describePgLinkError, pgLinkSecurity, type Pool, type PoolClient, type PoolOptions } from '@fleetpki/store';

/** The owner's connection to one database of a site's cluster. */
export function ownerUrl(config: FleetConfig, site: SiteConfig, database: string): string {
  // Encoded: a name is never read as part of the URL (a '?host=' in it would move the connection).
  return `postgres://${config.pgUser}@${site.pgHost}:${site.pgPort}/${encodeURIComponent(database)}`;
}

/** A pool as the owner, over TLS with the owner's password when tls.postgres is set (pgLinkSecurity). */
export function ownerPool(config: FleetConfig, site: SiteConfig, database: string, options: Omit<PoolOptions, 'security'> = {}): Pool {
  return createPool(ownerUrl(config, site, database), { ...options, security: pgLinkSecurity(config, 'owner') });
}

/** One connection of an owner pool; on a secured link a refusal says why (DB_AUTH_FAILED, DB_TLS_UNTRUSTED). */
export async function connectOwner(config: FleetConfig, site: SiteConfig, pool: Pool, database: string): Promise<PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    const security = pgLinkSecurity(config, 'owner');
    throw security ? describePgLinkError(ownerUrl(config, site, database), err, security) : err;
  }
}

export async function withOwnerPool<T>(config: FleetConfig, site: SiteConfig, database: string, fn: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = ownerPool(config, site, database, { applicationName: 'fleetpki-site-agent', max: 1, connectionTimeoutMillis: 2_000 });
  try {
    return await fn(pool);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/**
 * Every CA database on a site's cluster (the installation's and any test or benchmark deployment's):
 * the cluster's role is one for all of them, so a promotion activates the site in each.
 */
export async function caDatabases(config: FleetConfig, site: SiteConfig): Promise<string[]> {
  const names = await withOwnerPool(config, site, 'postgres', async (pool) => (await pool.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname')).rows.map((r) => r.datname));
  const found: string[] = [];
  for (const name of names) {
    if (name === 'postgres') continue;
    const has = await withOwnerPool(config, site, name, async (pool) => (await pool.query<{ t: string | null }>(`SELECT to_regclass('public.site_state')::text AS t`)).rows[0]!.t !== null).catch(() => false);
    if (has) found.push(name);
  }
  return found;
}
