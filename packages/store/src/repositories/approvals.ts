import type { Queryable } from '../pool.js';

export type ApprovalAction = 'revocation.bulk' | 'ca.revoke' | 'master-key.rotate' | 'site.switchover';

export interface ApprovalRecord {
  readonly id: string;
  readonly action: ApprovalAction;
  readonly payload: Record<string, unknown>;
  readonly summary: string;
  readonly requestedBy: string;
  readonly requestedByName: string;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
  readonly approvedBy: string | null;
  readonly approvedByName: string | null;
  readonly approvedAt: Date | null;
  readonly executedBy: string | null;
  readonly executedAt: Date | null;
  readonly outcome: Record<string, unknown> | null;
}

const COLUMNS = `id, action, payload, summary, requested_by, requested_by_name, requested_at, expires_at, approved_by, approved_by_name, approved_at, executed_by, executed_at, outcome`;

function toRecord(r: Record<string, unknown>): ApprovalRecord {
  return {
    id: r.id as string,
    action: r.action as ApprovalAction,
    payload: r.payload as Record<string, unknown>,
    summary: r.summary as string,
    requestedBy: r.requested_by as string,
    requestedByName: r.requested_by_name as string,
    requestedAt: r.requested_at as Date,
    expiresAt: r.expires_at as Date,
    approvedBy: (r.approved_by as string | null) ?? null,
    approvedByName: (r.approved_by_name as string | null) ?? null,
    approvedAt: (r.approved_at as Date | null) ?? null,
    executedBy: (r.executed_by as string | null) ?? null,
    executedAt: (r.executed_at as Date | null) ?? null,
    outcome: (r.outcome as Record<string, unknown> | null) ?? null,
  };
}

export async function insertApprovalRequest(db: Queryable, request: { id: string; action: ApprovalAction; payload: unknown; summary: string; requestedBy: string; requestedByName: string; ttlSeconds: number }): Promise<ApprovalRecord> {
  const { rows } = await db.query(
    `INSERT INTO approval_requests (id, action, payload, summary, requested_by, requested_by_name, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) RETURNING ${COLUMNS}`,
    [request.id, request.action, JSON.stringify(request.payload), request.summary, request.requestedBy, request.requestedByName, request.ttlSeconds],
  );
  return toRecord(rows[0]!);
}

/** The row, locked for the rest of the transaction when `lock` (approve and execute decide on it). */
export async function getApprovalRequest(db: Queryable, id: string, lock = false): Promise<ApprovalRecord | undefined> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM approval_requests WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function listApprovalRequests(db: Queryable, options: { open?: boolean; limit?: number } = {}): Promise<ApprovalRecord[]> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM approval_requests ${options.open ? 'WHERE executed_at IS NULL AND expires_at > now()' : ''} ORDER BY requested_at DESC LIMIT $1`, [options.limit ?? 100]);
  return rows.map(toRecord);
}

export async function markApproved(db: Queryable, id: string, by: string, byName: string): Promise<void> {
  await db.query('UPDATE approval_requests SET approved_by = $2, approved_by_name = $3, approved_at = now() WHERE id = $1', [id, by, byName]);
}

export async function markExecuting(db: Queryable, id: string, by: string): Promise<void> {
  await db.query('UPDATE approval_requests SET executed_by = $2, executed_at = now() WHERE id = $1', [id, by]);
}

/** Undoes markExecuting when the action failed, so the approved request can be run again. */
export async function releaseExecution(db: Queryable, id: string): Promise<void> {
  await db.query('UPDATE approval_requests SET executed_by = NULL, executed_at = NULL WHERE id = $1 AND outcome IS NULL', [id]);
}

export async function recordOutcome(db: Queryable, id: string, outcome: unknown): Promise<void> {
  await db.query('UPDATE approval_requests SET outcome = $2 WHERE id = $1', [id, JSON.stringify(outcome)]);
}

/** Database time, so expiry does not depend on the clocks of the hosts running the services. */
export async function databaseNow(db: Queryable): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('SELECT now() AS now');
  return rows[0]!.now;
}
