import { FleetError, type DatabaseClient, type FleetConfig } from '@fleetpki/core';
import { describePgLinkError, pgLinkSecurity } from './pg-link.js';
import { createPool, describeConnectionError, type Pool, type PoolOptions } from './pool.js';

/**
 * A service's connection pool to its site's CA database, checked before the service starts: the
 * database the connection actually reaches must be the configured one (config.pgDatabase). A service
 * that silently worked on another database than the one it was pointed at is how a benchmark once
 * waited for ever; now it refuses to start and says which two differ.
 */
export async function openServicePool(config: FleetConfig, service: DatabaseClient, max: number, options: Pick<PoolOptions, 'idleInTransactionTimeoutMs' | 'waits'> & { purpose?: string } = {}): Promise<Pool> {
  const site = config.sites[config.site];
  const url = site.serviceDatabaseUrls[service];
  // A process may have several pools (the issuer API: general, reserved, uploads): each says which it is.
  const applicationName = `fleetpki-${service}-${site.id}${options.purpose ? `-${options.purpose}` : ''}`;
  const security = pgLinkSecurity(config, service);
  const pool = createPool(url, { applicationName, max, security, ...(options.idleInTransactionTimeoutMs !== undefined ? { idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs } : {}), ...(options.waits ? { waits: options.waits } : {}) });
  let reached: string;
  try {
    reached = (await pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
  } catch (err) {
    await pool.end();
    throw security ? describePgLinkError(url, err, security) : describeConnectionError(url, err);
  }
  if (reached !== config.pgDatabase) {
    await pool.end();
    throw new FleetError('CONFIG_INVALID', `the ${service} service's connection reaches database "${reached}" but the configured CA database is "${config.pgDatabase}"; refusing to start`);
  }
  return pool;
}
