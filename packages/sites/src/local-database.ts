import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { readDatabaseRole } from '@fleetpki/store';
import { withOwnerPool } from './ca-databases.js';
import { isClusterRunning, postmasterAlive } from './postgres-cluster.js';

/** What the agent sees of its own site's PostgreSQL. */
export interface LocalDatabase {
  readonly running: boolean;
  readonly standby: boolean;
  /** On a primary: the other site streams from it as its synchronous standby. */
  readonly syncStandbyStreaming: boolean;
  /** On a primary: its commits wait for a synchronous standby (synchronous_standby_names is set). */
  readonly syncRequired: boolean;
}

export async function observeLocal(config: FleetConfig, site: SiteConfig, other: SiteConfig): Promise<LocalDatabase> {
  const down = { running: false, standby: false, syncStandbyStreaming: false, syncRequired: false };
  if (!(await isClusterRunning(site))) return down;
  // Running but not answering (starting, or out of connections): not "down"; decide nothing this time.
  // Refused connections are the exception: nothing listens, the postmaster is gone (pg_ctl may not
  // have noticed yet after a SIGKILL).
  try {
    return await withOwnerPool(config, site, 'postgres', async (pool) => {
      const role = await readDatabaseRole(pool);
      // Streaming, and heard from within a write's wait (a frozen host's walsender streams on for a while).
      const sync = role.standbys.some((s) => s.applicationName === `site_${other.id}` && s.state === 'streaming' && s.syncState === 'sync' && (s.lastReplySecondsAgo ?? 0) * 1000 <= config.writeWaitMs);
      const required = (await pool.query<{ s: string }>(`SELECT current_setting('synchronous_standby_names') AS s`)).rows[0]!.s.trim() !== '';
      return { running: true, standby: role.inRecovery, syncStandbyStreaming: sync, syncRequired: required };
    });
  } catch (err) {
    // Refused while the postmaster is still alive (starting, shutting down): decide nothing this time.
    if ((err as { code?: string }).code === 'ECONNREFUSED' && !postmasterAlive(site)) return down;
    throw err;
  }
}

