import { FleetError } from '@fleetpki/core';
import type { Queryable } from '../pool.js';

export type ApprovalAction = 'revocation.bulk' | 'ca.revoke' | 'master-key.rotate' | 'site.switchover' | 'drill.failover' | 'person.create' | 'person.rescope' | 'credential.create' | 'ca.root-rollover' | 'ca.root-custody';

export interface ApprovalRecord {
  readonly id: string;
  readonly action: ApprovalAction;
  readonly payload: Record<string, unknown>;
  readonly summary: string;
  /** The credential each step used ('token:<id>' or 'cert:<serial>'), and the person behind it. */
  readonly requestedBy: string;
  readonly requestedByName: string;
  readonly requestedByPerson: string | null;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
  readonly approvedBy: string | null;
  readonly approvedByName: string | null;
  readonly approvedByPerson: string | null;
  readonly approvedAt: Date | null;
  readonly executedBy: string | null;
  readonly executedByName: string | null;
  readonly executedByPerson: string | null;
  readonly executedAt: Date | null;
  readonly outcome: Record<string, unknown> | null;
}

const COLUMNS = `id, action, payload, summary, requested_by, requested_by_name, requested_by_person, requested_at, expires_at, approved_by, approved_by_name, approved_by_person, approved_at, executed_by, executed_by_name, executed_by_person, executed_at, outcome`;

function toRecord(r: Record<string, unknown>): ApprovalRecord {
  return {
    id: r.id as string,
    action: r.action as ApprovalAction,
    payload: r.payload as Record<string, unknown>,
    summary: r.summary as string,
    requestedBy: r.requested_by as string,
    requestedByName: r.requested_by_name as string,
    requestedByPerson: (r.requested_by_person as string | null) ?? null,
    requestedAt: r.requested_at as Date,
    expiresAt: r.expires_at as Date,
    approvedBy: (r.approved_by as string | null) ?? null,
    approvedByName: (r.approved_by_name as string | null) ?? null,
    approvedByPerson: (r.approved_by_person as string | null) ?? null,
    approvedAt: (r.approved_at as Date | null) ?? null,
    executedBy: (r.executed_by as string | null) ?? null,
    executedByName: (r.executed_by_name as string | null) ?? null,
    executedByPerson: (r.executed_by_person as string | null) ?? null,
    executedAt: (r.executed_at as Date | null) ?? null,
    outcome: (r.outcome as Record<string, unknown> | null) ?? null,
  };
}

/**
 * The two-people rule is the database's (migrations/0015_people.sql, 0026_credential_proofs.sql): every
 * change of state goes through a SECURITY DEFINER function that takes proof of a credential (the SHA-256
 * of a token's or a console session's secret, never an identifier a role can read), resolves the people
 * behind it itself, writes its own audit row, and refuses
 * with "CODE: message", which this turns into the stable error.
 */
const RULE_STATUS: Record<string, number> = {
  AUTH_INVALID: 401,
  CREDENTIAL_PROOF_REQUIRED: 403,
  ROLE_FORBIDDEN: 403,
  APPROVAL_SELF: 403,
  APPROVAL_SAME_PEOPLE: 403,
  APPROVAL_EXECUTOR_INVALID: 403,
  APPROVAL_REQUIRED: 403,
  APPROVAL_NOT_FOUND: 404,
  PERSON_NOT_FOUND: 404,
};

export function ruleError(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  const m = e?.code === 'P0001' ? /^([A-Z][A-Z_]+): ([\s\S]*)$/.exec(e.message ?? '') : null;
  return m ? new FleetError(m[1]!, m[2]!, { httpStatus: RULE_STATUS[m[1]!] ?? 409, cause: err }) : err;
}

async function callRule<T>(db: Queryable, sql: string, params: unknown[]): Promise<T[]> {
  try {
    return (await db.query(sql, params)).rows as T[];
  } catch (err) {
    throw ruleError(err);
  }
}

export async function insertApprovalRequest(db: Queryable, request: { id: string; action: ApprovalAction; payload: unknown; summary: string; proof: string; ttlSeconds: number }): Promise<ApprovalRecord> {
  const rows = await callRule<Record<string, unknown>>(db, `SELECT ${COLUMNS} FROM fp_approval_request($1, $2, $3, $4, $5, $6)`, [request.id, request.action, JSON.stringify(request.payload), request.summary, request.proof, request.ttlSeconds]);
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

export async function approveRequest(db: Queryable, id: string, proof: string): Promise<ApprovalRecord> {
  return toRecord((await callRule<Record<string, unknown>>(db, `SELECT ${COLUMNS} FROM fp_approval_approve($1, $2)`, [id, proof]))[0]!);
}

/** The claim to execute, committed before the operation runs (the database checks who may). */
export async function claimExecution(db: Queryable, id: string, action: ApprovalAction, proof: string): Promise<ApprovalRecord> {
  return toRecord((await callRule<Record<string, unknown>>(db, `SELECT ${COLUMNS} FROM fp_approval_claim($1, $2, $3)`, [id, action, proof]))[0]!);
}

/** Gives the claim back when the action failed, so the approved request can be run again (only its executor). */
export async function releaseExecution(db: Queryable, id: string, proof: string): Promise<void> {
  await callRule(db, 'SELECT fp_approval_release($1, $2)', [id, proof]);
}

export async function recordOutcome(db: Queryable, id: string, outcome: unknown, proof: string): Promise<void> {
  await callRule(db, 'SELECT fp_approval_outcome($1, $2, $3)', [id, JSON.stringify(outcome), proof]);
}

/** Database time, so expiry does not depend on the clocks of the hosts running the services. */
export async function databaseNow(db: Queryable): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('SELECT now() AS now');
  return rows[0]!.now;
}
