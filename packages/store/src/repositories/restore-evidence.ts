// What a restore drill reads to prove what a restore gave back: the certificates a cluster holds (from
// the restored one, and from the live one up to the target time) and the newest of them. "By T" means
// committed by T, as PostgreSQL's recovery counts it (it stops at the first commit after T): the
// commit time where the cluster tracks it (track_commit_timestamp), else issued_at, the transaction's
// start, which can be earlier than its commit (a batch chunk's group commit).
import type { Queryable } from '../pool.js';

export interface CertificateSummary {
  readonly count: number;
  /** The newest certificate by commit time: the last one acknowledged. */
  readonly last: { readonly serial: Buffer; readonly issuedAt: Date; readonly der: Buffer } | null;
  /** Whether "by T" was read from commit times (else from issued_at). */
  readonly commitTimes: boolean;
}

async function committedAt(db: Queryable): Promise<{ expression: string; tracked: boolean }> {
  const { rows } = await db.query<{ on: boolean }>(`SELECT current_setting('track_commit_timestamp') = 'on' AS on`);
  // Rows older than the tracking (or frozen) have no commit time: their issued_at stands in.
  return rows[0]!.on ? { expression: 'coalesce(pg_xact_commit_timestamp(xmin), issued_at)', tracked: true } : { expression: 'issued_at', tracked: false };
}

/** Count and newest certificate, of those committed at or before `until` (every one without it). */
export async function certificateSummary(db: Queryable, until?: Date): Promise<CertificateSummary> {
  const at = await committedAt(db);
  const where = until ? `WHERE ${at.expression} <= $1` : '';
  const params = until ? [until] : [];
  const { rows: count } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM certificates ${where}`, params);
  const { rows: last } = await db.query<{ serial: Buffer; issued_at: Date; der: Buffer }>(`SELECT serial, issued_at, der FROM certificates ${where} ORDER BY ${at.expression} DESC, serial DESC LIMIT 1`, params);
  const row = last[0];
  return { count: Number(count[0]!.n), last: row ? { serial: row.serial, issuedAt: row.issued_at, der: row.der } : null, commitTimes: at.tracked };
}

/**
 * Pages of serials in serial order, of those committed at or before `until` (all without it): two
 * clusters' certificates compared by walking both in step, page by page, whatever their size.
 */
export async function certificateSerialPages(db: Queryable, limit: number, until?: Date): Promise<(after: Buffer | null) => Promise<Buffer[]>> {
  const at = await committedAt(db);
  return async (after) => {
    const { rows } = await db.query<{ serial: Buffer }>(
      `SELECT serial FROM certificates WHERE ($1::bytea IS NULL OR serial > $1) AND ($3::timestamptz IS NULL OR ${at.expression} <= $3) ORDER BY serial LIMIT $2`,
      [after, limit, until ?? null],
    );
    return rows.map((r) => r.serial);
  };
}

/** The database's clock, the WAL position and the counts of certificates and revocations, in one snapshot: what a loss is measured against. */
export async function lossSnapshot(db: Queryable): Promise<{ at: Date; lsn: string; certificates: number; revocations: number }> {
  const { rows } = await db.query<{ at: Date; lsn: string; certificates: string; revocations: string }>(
    'SELECT now() AS at, pg_current_wal_lsn()::text AS lsn, (SELECT count(*) FROM certificates)::text AS certificates, (SELECT count(*) FROM revocations)::text AS revocations',
  );
  const r = rows[0]!;
  return { at: r.at, lsn: r.lsn, certificates: Number(r.certificates), revocations: Number(r.revocations) };
}

/** Whether a certificate is there (a drill's newest from before a loss, looked for afterwards). */
export async function certificateDer(db: Queryable, serial: Buffer): Promise<Buffer | undefined> {
  const { rows } = await db.query<{ der: Buffer }>('SELECT der FROM certificates WHERE serial = $1', [serial]);
  return rows[0]?.der;
}

/** Revocations recorded at or before `until`: a revocation lost with both sites is a revoked certificate answering good. */
export async function revocationCount(db: Queryable, until: Date): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM revocations WHERE created_at <= $1', [until]);
  return Number(rows[0]!.n);
}
