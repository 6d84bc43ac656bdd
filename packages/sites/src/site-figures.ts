import type { FleetConfig } from '@fleetpki/core';
import { auditSealState, lastDrills, readDatabaseRole, walArchiverState, type Pool } from '@fleetpki/store';
import { ownerPool } from './ca-databases.js';

/** What the site agent's metrics read of its site's CA database at a scrape (packages/metrics' SiteFigures). */
export interface SiteFiguresReader {
  read(): Promise<{
    primary: boolean;
    standbys: { name: string; syncState: string; state: string; replayLagBytes: number; lastReplySecondsAgo: number | null }[];
    archiver: { failedCount: number; lastSuccessSeconds: number | null };
    audit: { lastSealedSeq: number; unsealed: number; oldestUnsealedSeconds: number };
    drills: { kind: string; finishedAt: Date; rtoSeconds: number | null; rpoLost: number | null }[];
  }>;
  close(): Promise<void>;
}

/**
 * Reads replication, the WAL archiver, the audit seals and the last drills from this site's own
 * cluster (a hot standby answers the same reads), on one owner connection of its own: a scrape never
 * waits behind the agent's decisions, and bounded waits keep a stuck database from holding a scrape.
 */
export function siteFiguresReader(config: FleetConfig): SiteFiguresReader {
  const site = config.sites[config.site];
  const pool: Pool = ownerPool(config, site, config.pgDatabase, { applicationName: 'fleetpki-site-agent-metrics', max: 1, connectionTimeoutMillis: 2_000, waits: { lockTimeoutMs: 2_000, statementTimeoutMs: 5_000, clientCheckIntervalMs: 5_000 } });
  return {
    async read() {
      const role = await readDatabaseRole(pool);
      return {
        primary: !role.inRecovery,
        standbys: role.standbys.map((s) => ({ name: s.applicationName, syncState: s.syncState, state: s.state, replayLagBytes: s.replayLagBytes, lastReplySecondsAgo: s.lastReplySecondsAgo ?? null })),
        archiver: await walArchiverState(pool),
        audit: await auditSealState(pool),
        drills: await lastDrills(pool),
      };
    },
    close: () => pool.end(),
  };
}
