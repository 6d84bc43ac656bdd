import type { Queryable } from '../pool.js';

// The figures the processes' metrics read at each scrape (docs/metrics.md). Each query is small: an
// index or a tiny table, so a scrape every few seconds costs the database nothing it would notice.

export interface CrlState {
  readonly caId: string;
  readonly shard: number;
  readonly kind: 'full' | 'delta';
  readonly crlNumber: bigint;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

/** Every CRL this database serves (one row per CA, shard and kind). */
export async function crlStates(db: Queryable): Promise<CrlState[]> {
  const { rows } = await db.query<{ ca_id: string; shard: number; kind: 'full' | 'delta'; crl_number: string; this_update: Date; next_update: Date }>(
    'SELECT ca_id, shard, kind, crl_number::text, this_update, next_update FROM crls ORDER BY ca_id, shard, kind',
  );
  return rows.map((r) => ({ caId: r.ca_id, shard: r.shard, kind: r.kind, crlNumber: BigInt(r.crl_number), thisUpdate: r.this_update, nextUpdate: r.next_update }));
}

/**
 * Revocations of the last hour with no stored SHA-1 "revoked" response yet (the responder is
 * re-signing them, or failing to), by CA: how many (counted up to 10,000) and the oldest's age. An
 * hour, not the CRL publisher's ten minutes (revocationsAwaitingOcsp): a re-signer that stays broken
 * keeps its alert for that long. revocations_by_commit_order bounds the scan to the window, and the
 * cap bounds a scrape after a bulk revocation.
 */
export async function unsignedRevocations(db: Queryable): Promise<{ caId: string; count: number; oldestSeconds: number }[]> {
  const { rows } = await db.query<{ ca_id: string; n: number; oldest_s: number }>(
    `SELECT ca_id, count(*)::int AS n, extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
       FROM (SELECT r.ca_id, r.created_at FROM revocations r
              WHERE r.created_at > now() - interval '1 hour'
                AND NOT EXISTS (SELECT 1 FROM ocsp_responses o WHERE o.serial = r.serial AND o.hash_alg = 'sha1' AND o.status = 'revoked')
              ORDER BY r.created_at LIMIT 10000) unsigned
      GROUP BY ca_id`,
  );
  return rows.map((r) => ({ caId: r.ca_id, count: r.n, oldestSeconds: r.oldest_s }));
}

/** Age of the oldest chunk not done of any batch (its batch's start), 0 when every chunk is done. */
export async function oldestUnfinishedChunkSeconds(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ age: number | null }>(
    `SELECT extract(epoch FROM now() - min(b.started_at))::float8 AS age
       FROM batch_chunks c JOIN batches b ON b.id = c.batch_id
      WHERE c.state <> 'done'`,
  );
  return Math.max(0, rows[0]?.age ?? 0);
}

export interface AuditSealState {
  /** The last audit event a seal covers (0 when none is sealed). */
  readonly lastSealedSeq: number;
  readonly unsealed: number;
  /** Age of the oldest event not yet sealed, 0 when none. */
  readonly oldestUnsealedSeconds: number;
}

export async function auditSealState(db: Queryable): Promise<AuditSealState> {
  const { rows } = await db.query<{ last_seq: string | null; unsealed: number; oldest_s: number | null }>(
    `SELECT (SELECT max(seq) FROM audit_seals)::text AS last_seq,
            count(*)::int AS unsealed,
            extract(epoch FROM now() - min(at))::float8 AS oldest_s
       FROM audit_events WHERE chain_hash IS NULL`,
  );
  const r = rows[0]!;
  return { lastSealedSeq: Number(r.last_seq ?? 0), unsealed: r.unsealed, oldestUnsealedSeconds: Math.max(0, r.oldest_s ?? 0) };
}

/** The last drill of each kind: when it ended, its RTO and the acknowledged writes it lost. */
export async function lastDrills(db: Queryable): Promise<{ kind: string; finishedAt: Date; rtoSeconds: number | null; rpoLost: number | null }[]> {
  const { rows } = await db.query<{ kind: string; finished_at: Date; rto_s: string | null; rpo_lost: number | null }>(
    `SELECT DISTINCT ON (kind) kind, finished_at, rto_s::text, rpo_lost FROM drill_runs ORDER BY kind, finished_at DESC`,
  );
  return rows.map((r) => ({ kind: r.kind, finishedAt: r.finished_at, rtoSeconds: r.rto_s === null ? null : Number(r.rto_s), rpoLost: r.rpo_lost }));
}

/** The WAL archiver of this cluster (pg_stat_archiver): failures so far and the last success's age. */
export async function walArchiverState(db: Queryable): Promise<{ failedCount: number; lastSuccessSeconds: number | null }> {
  const { rows } = await db.query<{ failed_count: string; age: number | null }>(
    `SELECT failed_count::text, extract(epoch FROM now() - last_archived_time)::float8 AS age FROM pg_stat_archiver`,
  );
  return { failedCount: Number(rows[0]?.failed_count ?? 0), lastSuccessSeconds: rows[0]?.age ?? null };
}
