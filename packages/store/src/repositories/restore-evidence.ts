// What a restore drill reads to prove what a restore gave back: the certificates a cluster holds (from
// the restored one, and from the live one up to the target time) and the newest of them.
import type { Queryable } from '../pool.js';

export interface CertificateSummary {
  readonly count: number;
  /** The newest certificate by issued_at (serials are random, so "last" means last issued). */
  readonly last: { readonly serial: Buffer; readonly issuedAt: Date; readonly der: Buffer } | null;
}

/** Count and newest certificate, of those issued at or before `until` (every one without it). */
export async function certificateSummary(db: Queryable, until?: Date): Promise<CertificateSummary> {
  const where = until ? 'WHERE issued_at <= $1' : '';
  const params = until ? [until] : [];
  const { rows: count } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM certificates ${where}`, params);
  const { rows: last } = await db.query<{ serial: Buffer; issued_at: Date; der: Buffer }>(`SELECT serial, issued_at, der FROM certificates ${where} ORDER BY issued_at DESC, serial DESC LIMIT 1`, params);
  const row = last[0];
  return { count: Number(count[0]!.n), last: row ? { serial: row.serial, issuedAt: row.issued_at, der: row.der } : null };
}

/**
 * One page of serials in serial order after `after`, of those issued at or before `until` (all without
 * it): two clusters' certificates compared by walking both in step, page by page, whatever their size.
 */
export async function certificateSerialsAfter(db: Queryable, after: Buffer | null, limit: number, until?: Date): Promise<Buffer[]> {
  const { rows } = await db.query<{ serial: Buffer }>(
    `SELECT serial FROM certificates WHERE ($1::bytea IS NULL OR serial > $1) AND ($3::timestamptz IS NULL OR issued_at <= $3) ORDER BY serial LIMIT $2`,
    [after, limit, until ?? null],
  );
  return rows.map((r) => r.serial);
}
