import type { Queryable } from './pool.js';

export interface DatabaseRole {
  readonly inRecovery: boolean;
  /** On a primary: its standbys as pg_stat_replication sees them. */
  readonly standbys: readonly { applicationName: string; state: string; syncState: string; replayLagBytes: number; replayLagSeconds: number | null; lastReplySecondsAgo?: number | null }[];
  /** On a standby: bytes received but not yet replayed, and seconds since the last replayed transaction. */
  readonly replayLagBytes: number | null;
  readonly lastReplaySecondsAgo: number | null;
}

/**
 * The database's role and replication. A CA database has fp_replication_standbys (migrations/0028): a
 * service role, outside pg_monitor, sees pg_stat_replication's columns as NULL. The owner's connections
 * to the cluster's `postgres` database (site agents, `sites status`) read the view itself.
 */
export async function readDatabaseRole(db: Queryable): Promise<DatabaseRole> {
  const { rows } = await db.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
  const inRecovery = rows[0]!.in_recovery;
  if (!inRecovery) {
    const { rows: fn } = await db.query<{ ok: boolean }>(`SELECT to_regprocedure('fp_replication_standbys()') IS NOT NULL AS ok`);
    const standbys = await db.query<{ application_name: string; state: string; sync_state: string; lag_bytes: number | null; lag_s: number | null; reply_s: number | null }>(
      fn[0]!.ok
        ? 'SELECT application_name, state, sync_state, reply_s, lag_bytes, lag_s FROM fp_replication_standbys()'
        : `SELECT application_name, state, sync_state,
                  extract(epoch FROM clock_timestamp() - reply_time)::float8 AS reply_s,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
                  extract(epoch FROM replay_lag)::float8 AS lag_s
             FROM pg_stat_replication ORDER BY application_name`,
    );
    return {
      inRecovery,
      standbys: standbys.rows.map((r) => ({ applicationName: r.application_name, state: r.state, syncState: r.sync_state, replayLagBytes: Number(r.lag_bytes ?? 0), replayLagSeconds: r.lag_s, lastReplySecondsAgo: r.reply_s })),
      replayLagBytes: null,
      lastReplaySecondsAgo: null,
    };
  }
  const lag = await db.query<{ lag_bytes: number | null; ago: number | null }>(
    `SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS lag_bytes,
            extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS ago`,
  );
  return { inRecovery, standbys: [], replayLagBytes: Number(lag.rows[0]?.lag_bytes ?? 0), lastReplaySecondsAgo: lag.rows[0]?.ago ?? null };
}
