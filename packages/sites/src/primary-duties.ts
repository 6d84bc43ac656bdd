// What the leader's agent does for its primary every step, whoever runs PostgreSQL (the site agent itself
// or Patroni): publish how far the primary has written (the standby's vouching), say when writes are blocked.
import { recordWritesBlocked, setVouchFloor, type CaSiteState, type ConsensusClient } from '@fleetpki/consensus';
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { withOwnerPool } from './ca-databases.js';

type Log = (line: string) => void;

/** What publishVouchFloor remembers between steps: the last floor, and when it last wrote a heartbeat. */
export interface FloorMemory {
  lastLsn?: string;
  heartbeatAt?: number;
}

/** How often an idle primary writes a heartbeat record (well inside the standby's leaseMs "last heard" limit). */
const HEARTBEAT_EVERY_MS = 1_000;

/**
 * How far the leader's primary has written, for the standby's vouching (SiteLease): a standby that has
 * not replayed this far may lack a revocation the primary already shows, so it does not say "good".
 * Every step, moved or not: its time says the primary's agent is still watching (SiteLease refuses a stale floor).
 *
 * An idle primary sends its standby nothing (the walsender pings only when the standby's replies stop),
 * so the standby's "last message from the primary" would age past leaseMs and it would stop vouching
 * for want of news, not for want of data. So when the floor has not moved, the primary writes a tiny
 * non-transactional WAL record (no transaction, nothing waits for the standby) at most once a second.
 * The cost: an idle primary's archive closes a (nearly empty) segment each archive_timeout.
 */
export async function publishVouchFloor(client: ConsensusClient, config: FleetConfig, site: SiteConfig, log: Log, memory: FloorMemory = {}): Promise<void> {
  let lsn: string;
  try {
    lsn = await withOwnerPool(config, site, 'postgres', async (pool) => {
      const now = performance.now();
      const read = async () => (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      const at = await read();
      if (at !== memory.lastLsn || (memory.heartbeatAt !== undefined && now - memory.heartbeatAt < HEARTBEAT_EVERY_MS)) return at;
      memory.heartbeatAt = now;
      // The floor stays where it was (the heartbeat carries nothing a standby could lack): publishing the
      // heartbeat's own end would make the standby "behind" until the WAL writer has written it.
      await pool.query(`SELECT pg_logical_emit_message(false, 'fleetpki-heartbeat', '')`);
      return at;
    });
  } catch (err) {
    // Not published: the standby stops vouching once the last floor is too old (SiteLease).
    log(`site ${site.id}: cannot read the primary's WAL position for the standby's vouching: ${(err as Error).message}`);
    return;
  }
  memory.lastLsn = lsn;
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
