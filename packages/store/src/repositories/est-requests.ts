import { randomUUID } from 'node:crypto';
import type { Pool, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';

/** An EST enrolment held for an administrator's approval (migrations/0020_est.sql). */
export interface EstRequestRecord {
  readonly id: string;
  readonly label: string;
  readonly manufacturerId: string;
  readonly eui64: Buffer;
  readonly requestedBy: string;
  readonly status: 'pending' | 'approved' | 'refused';
  readonly decidedBy: string | null;
  readonly decidedAt: Date | null;
  readonly createdAt: Date;
}

interface Row {
  id: string;
  label: string;
  manufacturer_id: string;
  eui64: Buffer;
  requested_by: string;
  status: 'pending' | 'approved' | 'refused';
  decided_by: string | null;
  decided_at: Date | null;
  created_at: Date;
}

const toRecord = (r: Row): EstRequestRecord => ({ id: r.id, label: r.label, manufacturerId: r.manufacturer_id, eui64: r.eui64, requestedBy: r.requested_by, status: r.status, decidedBy: r.decided_by, decidedAt: r.decided_at, createdAt: r.created_at });

/**
 * The request for this CSR under this label: the existing one (a poll), or a new pending one, audited.
 * One row per (label, CSR hash), so concurrent polls of the same CSR share it.
 */
export async function holdEstRequest(pool: Pool, site: 'a' | 'b', request: { label: string; csrSha256: Buffer; manufacturerId: string; eui64: Buffer; requestedBy: string }): Promise<EstRequestRecord> {
  return withTransaction(pool, async (client) => {
    const inserted = await client.query<Row>(
      `INSERT INTO est_requests (id, label, csr_sha256, manufacturer_id, eui64, requested_by) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (label, csr_sha256) DO NOTHING RETURNING *`,
      [randomUUID(), request.label, request.csrSha256, request.manufacturerId, request.eui64, request.requestedBy],
    );
    if (inserted.rows[0]) {
      await appendAuditEvents(client, [{ site, actor: request.requestedBy, action: 'est.request.held', subject: inserted.rows[0].id, details: { label: request.label, eui64: request.eui64.toString('hex') } }]);
      return toRecord(inserted.rows[0]);
    }
    const { rows } = await client.query<Row>('SELECT * FROM est_requests WHERE label = $1 AND csr_sha256 = $2', [request.label, request.csrSha256]);
    return toRecord(rows[0]!);
  });
}

export async function getEstRequest(db: Queryable, id: string): Promise<EstRequestRecord | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM est_requests WHERE id = $1', [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function listEstRequests(db: Queryable, status: 'pending' | 'approved' | 'refused', limit = 200): Promise<EstRequestRecord[]> {
  const { rows } = await db.query<Row>('SELECT * FROM est_requests WHERE status = $1 ORDER BY created_at LIMIT $2', [status, limit]);
  return rows.map(toRecord);
}

/** Approves or refuses a pending request, once; false when it was not pending any more. */
export async function decideEstRequest(pool: Pool, site: 'a' | 'b', id: string, decision: 'approved' | 'refused', decidedBy: string): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query(`UPDATE est_requests SET status = $2, decided_by = $3, decided_at = now() WHERE id = $1 AND status = 'pending'`, [id, decision, decidedBy]);
    if (rowCount !== 1) return false;
    await appendAuditEvents(client, [{ site, actor: decidedBy, action: `est.request.${decision}`, subject: id }]);
    return true;
  });
}
