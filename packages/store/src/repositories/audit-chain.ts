import { ruleError } from './approvals.js';
import type { Queryable } from '../pool.js';

export interface AuditRow {
  readonly seq: string;
  /** PostgreSQL's text of `at` (microseconds), so the canonical form is exact. */
  readonly at: string;
  readonly site: string;
  readonly actor: string;
  readonly action: string;
  readonly subject: string | null;
  /** details as PostgreSQL's jsonb text (normalised key order). */
  readonly details: string;
  readonly chainHash: Buffer | null;
}

const COLUMNS = `seq::text, at::text, site, actor, action, subject, details::text, chain_hash`;
type Raw = { seq: string; at: string; site: string; actor: string; action: string; subject: string | null; details: string; chain_hash: Buffer | null };
const toRow = (r: Raw): AuditRow => ({ seq: r.seq, at: r.at, site: r.site, actor: r.actor, action: r.action, subject: r.subject, details: r.details, chainHash: r.chain_hash });

/** Unsealed rows after `afterSeq` in seq order, each with its age in ms (by the database clock). */
export async function unsealedAuditRows(db: Queryable, afterSeq: string, limit: number): Promise<(AuditRow & { ageMs: number })[]> {
  const { rows } = await db.query<Raw & { age_ms: number }>(
    `SELECT ${COLUMNS}, (extract(epoch FROM clock_timestamp() - at) * 1000)::float8 AS age_ms FROM audit_events WHERE chain_hash IS NULL AND audit_events.seq > $1::bigint ORDER BY audit_events.seq LIMIT $2`,
    [afterSeq, limit],
  );
  return rows.map((r) => ({ ...toRow(r), ageMs: r.age_ms }));
}

export async function lastAuditSeal(db: Queryable): Promise<{ seq: string; chainHash: Buffer } | undefined> {
  const { rows } = await db.query<{ seq: string; chain_hash: Buffer }>('SELECT seq::text, chain_hash FROM audit_seals ORDER BY audit_seals.seq DESC LIMIT 1');
  return rows[0] && { seq: rows[0].seq, chainHash: rows[0].chain_hash };
}

/**
 * Stores the chain hashes of newly sealed rows and the seal itself, in the caller's transaction, through
 * fp_audit_seal (migrations/0027), which refuses a seal that does not continue the last one or leaves out
 * a row inside it (AUDIT_SEAL_INVALID, AUDIT_SEAL_GAP).
 */
export async function saveAuditSeal(db: Queryable, sealed: readonly { seq: string; chainHash: Buffer }[], signed?: { keyId: Buffer; signature: Buffer }): Promise<void> {
  if (sealed.length === 0) return;
  try {
    await db.query('SELECT fp_audit_seal($1::bigint[], $2::bytea[], $3, $4)', [sealed.map((s) => s.seq), sealed.map((s) => s.chainHash), signed?.keyId ?? null, signed?.signature ?? null]);
  } catch (err) {
    throw ruleError(err);
  }
}

/** Every row in seq order (ordered by the column, not its text alias), a page at a time, for verification. */
export async function auditRowsAfter(db: Queryable, afterSeq: string, limit: number): Promise<AuditRow[]> {
  const { rows } = await db.query<Raw>(`SELECT ${COLUMNS} FROM audit_events WHERE audit_events.seq > $1::bigint ORDER BY audit_events.seq LIMIT $2`, [afterSeq, limit]);
  return rows.map(toRow);
}

export async function listAuditSeals(db: Queryable): Promise<{ seq: string; chainHash: Buffer; rows: number; keyId: Buffer | null; signature: Buffer | null }[]> {
  const { rows } = await db.query<{ seq: string; chain_hash: Buffer; rows: number; key_id: Buffer | null; signature: Buffer | null }>('SELECT seq::text, chain_hash, rows, key_id, signature FROM audit_seals ORDER BY audit_seals.seq');
  return rows.map((r) => ({ seq: r.seq, chainHash: r.chain_hash, rows: r.rows, keyId: r.key_id, signature: r.signature }));
}

/** The newest seals, for people looking (the console's audit page): what each covers, when, and by which key. */
export async function recentAuditSeals(db: Queryable, limit: number): Promise<{ seq: string; rows: number; sealedAt: Date; keyId: Buffer | null }[]> {
  const { rows } = await db.query<{ seq: string; rows: number; sealed_at: Date; key_id: Buffer | null }>('SELECT seq::text, rows, sealed_at, key_id FROM audit_seals ORDER BY seq DESC LIMIT $1', [limit]);
  return rows.map((r) => ({ seq: r.seq, rows: r.rows, sealedAt: r.sealed_at, keyId: r.key_id }));
}
