// What the leader's agent does for its primary every step, whoever runs PostgreSQL (the site agent itself
// or Patroni): publish how far the primary has written (the standby's vouching), say when writes are blocked.
import { recordWritesBlocked, setVouchFloor, type CaSiteState, type ConsensusClient } from '@fleetpki/consensus';
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { withOwnerPool } from './ca-databases.js';

type Log = (line: string) => void;

/**
 * How far the leader's primary has written, for the standby's vouching (SiteLease): a standby that has
 * not replayed this far may lack a revocation the primary already shows, so it does not say "good".
 * Every step, moved or not: its time says the primary's agent is still watching (SiteLease refuses a stale floor).
 */
export async function publishVouchFloor(client: ConsensusClient, config: FleetConfig, site: SiteConfig, log: Log): Promise<void> {
  let lsn: string;
  try {
    lsn = await withOwnerPool(config, site, 'postgres', async (pool) => (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn);
  } catch (err) {
    // Not published: the standby stops vouching once the last floor is too old (SiteLease).
    log(`site ${site.id}: cannot read the primary's WAL position for the standby's vouching: ${(err as Error).message}`);
    return;
  }
  await setVouchFloor(client, config, { site: site.id, lsn, at: new Date().toISOString() });
}

/** Writes blocked on the leader's primary (its synchronous standby unreachable): said at error, recorded in etcd. */
export async function watchWrites(client: ConsensusClient, config: FleetConfig, site: SiteConfig, other: SiteConfig, blocked: boolean, state: CaSiteState, log: Log): Promise<void> {
  const recorded = state.writesBlocked[site.id];
  if (blocked && !recorded) {
    const since = new Date().toISOString();
    log(`site ${site.id}: ERROR writes blocked: synchronous standby (site ${other.id}) unreachable since ${since}`);
    await recordWritesBlocked(client, config, site.id, since);
  } else if (!blocked && recorded) {
    log(`site ${site.id}: writes flow again (blocked since ${recorded})`);
    await recordWritesBlocked(client, config, site.id, undefined);
  }
}
