import { randomUUID } from 'node:crypto';
import type { Pool, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';

/**
 * An enrolment held for an administrator's approval because its label (profile and key role) is held
 * (migrations/0020_est.sql, 0031_enrolment_holds.sql; the table kept its EST-era name).
 */
export interface EnrolmentRequestRecord {
  readonly id: string;
  readonly label: string;
  readonly manufacturerId: string;
  readonly eui64: Buffer;
  /** Which protocol asked first: api, est or cmp. */
  readonly protocol: EnrolmentProtocol;
  readonly requestedBy: string;
  readonly status: 'pending' | 'approved' | 'refused';
  readonly decidedBy: string | null;
  readonly decidedAt: Date | null;
  readonly createdAt: Date;
}

export type EnrolmentProtocol = 'api' | 'est' | 'cmp';

interface Row {
  id: string;
  label: string;
  manufacturer_id: string;
  eui64: Buffer;
  protocol: EnrolmentProtocol;
  requested_by: string;
  status: 'pending' | 'approved' | 'refused';
  decided_by: string | null;
  decided_at: Date | null;
  created_at: Date;
}

const toRecord = (r: Row): EnrolmentRequestRecord => ({ id: r.id, label: r.label, manufacturerId: r.manufacturer_id, eui64: r.eui64, protocol: r.protocol, requestedBy: r.requested_by, status: r.status, decidedBy: r.decided_by, decidedAt: r.decided_at, createdAt: r.created_at });

/**
 * The request for this device key under this label, for this manufacturer: the existing one (a poll,
 * by any protocol), or a new pending one, audited. One row per (label, manufacturer, device, key), so
 * concurrent polls share it.
 */
export async function holdEnrolmentRequest(
  pool: Pool,
  site: 'a' | 'b',
  request: { label: string; manufacturerId: string; eui64: Buffer; publicKeySha256: Buffer; protocol: EnrolmentProtocol; requestedBy: string },
): Promise<EnrolmentRequestRecord> {
  return withTransaction(pool, async (client) => {
    const inserted = await client.query<Row>(
      `INSERT INTO est_requests (id, label, manufacturer_id, eui64, public_key_sha256, protocol, requested_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (label, manufacturer_id, eui64, public_key_sha256) WHERE public_key_sha256 IS NOT NULL DO NOTHING RETURNING *`,
      [randomUUID(), request.label, request.manufacturerId, request.eui64, request.publicKeySha256, request.protocol, request.requestedBy],
    );
    if (inserted.rows[0]) {
      await appendAuditEvents(client, [{ site, actor: request.requestedBy, action: 'enrolment.request.held', subject: inserted.rows[0].id, details: { label: request.label, eui64: request.eui64.toString('hex'), protocol: request.protocol } }]);
      return toRecord(inserted.rows[0]);
    }
    const { rows } = await client.query<Row>('SELECT * FROM est_requests WHERE label = $1 AND manufacturer_id = $2 AND eui64 = $3 AND public_key_sha256 = $4', [request.label, request.manufacturerId, request.eui64, request.publicKeySha256]);
    return toRecord(rows[0]!);
  });
}

export async function getEnrolmentRequest(db: Queryable, id: string): Promise<EnrolmentRequestRecord | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM est_requests WHERE id = $1', [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function listEnrolmentRequests(db: Queryable, status: 'pending' | 'approved' | 'refused', limit = 200): Promise<EnrolmentRequestRecord[]> {
  const { rows } = await db.query<Row>('SELECT * FROM est_requests WHERE status = $1 ORDER BY created_at LIMIT $2', [status, limit]);
  return rows.map(toRecord);
}

/** Approves or refuses a pending request, once; false when it was not pending any more. */
export async function decideEnrolmentRequest(pool: Pool, site: 'a' | 'b', id: string, decision: 'approved' | 'refused', decidedBy: string): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query(`UPDATE est_requests SET status = $2, decided_by = $3, decided_at = now() WHERE id = $1 AND status = 'pending'`, [id, decision, decidedBy]);
    if (rowCount !== 1) return false;
    await appendAuditEvents(client, [{ site, actor: decidedBy, action: `enrolment.request.${decision}`, subject: id }]);
    return true;
  });
}
