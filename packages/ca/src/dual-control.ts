import { randomUUID } from 'node:crypto';
import { FleetError, type SiteId, isUuid } from '@fleetpki/core';
import {
  appendAuditEvents,
  databaseNow,
  getApprovalRequest,
  insertApprovalRequest,
  markApproved,
  markExecuting,
  recordOutcome,
  releaseExecution,
  withTransaction,
  type ApprovalAction,
  type ApprovalRecord,
  type Pool,
  type Role,
} from '@fleetpki/store';
import type { Principal } from './api-tokens.js';

export type { ApprovalAction, ApprovalRecord };

/**
 * The two-person rule for the operations that can switch meters off or hand keys out: a request names
 * the exact operation, a second officer (another token and another name) approves it, one of the two
 * executes it once, before it expires. Each step is an audit event in the step's own transaction.
 */
export const DUAL_CONTROL_ROLES: Readonly<Record<ApprovalAction, readonly Role[]>> = {
  'revocation.bulk': ['revocation-officer', 'administrator'],
  'ca.revoke': ['revocation-officer', 'administrator'],
  'master-key.rotate': ['custodian'],
  'site.switchover': ['administrator'],
};

export type ApprovalStatus = 'pending' | 'approved' | 'executed' | 'expired';

export function approvalStatus(record: ApprovalRecord, now: Date): ApprovalStatus {
  if (record.executedAt) return 'executed';
  if (record.expiresAt.getTime() <= now.getTime()) return 'expired';
  return record.approvedAt ? 'approved' : 'pending';
}

const notFound = (id: string) => new FleetError('APPROVAL_NOT_FOUND', `no approval request ${id.slice(0, 40)}`, { httpStatus: 404 });

export class DualControl {
  constructor(
    private readonly pool: Pool,
    private readonly site: SiteId,
    private readonly ttlMinutes: number,
  ) {}

  private assertRole(officer: Principal, action: ApprovalAction, verb: string): void {
    const roles = DUAL_CONTROL_ROLES[action];
    if (!roles.includes(officer.role)) throw new FleetError('ROLE_FORBIDDEN', `role ${officer.role} may not ${verb} ${action}; needs ${roles.join(' or ')}`, { httpStatus: 403 });
  }

  async request(officer: Principal, action: ApprovalAction, payload: Record<string, unknown>, summary: string): Promise<ApprovalRecord> {
    this.assertRole(officer, action, 'request');
    return withTransaction(this.pool, async (client) => {
      const record = await insertApprovalRequest(client, { id: randomUUID(), action, payload, summary, requestedBy: officer.tokenId, requestedByName: officer.name, ttlSeconds: this.ttlMinutes * 60 });
      await appendAuditEvents(client, [{ site: this.site, actor: `token:${officer.name}`, action: 'approval.request', subject: record.id, details: { action, summary, expiresAt: record.expiresAt.toISOString() } }]);
      return record;
    });
  }

  async get(id: string): Promise<ApprovalRecord> {
    if (!isUuid(id)) throw notFound(id);
    const record = await getApprovalRequest(this.pool, id);
    if (!record) throw notFound(id);
    return record;
  }

  async approve(officer: Principal, id: string): Promise<ApprovalRecord> {
    if (!isUuid(id)) throw notFound(id);
    const refusal = await withTransaction(this.pool, async (client) => {
      const record = await getApprovalRequest(client, id, true);
      if (!record) throw notFound(id);
      this.assertRole(officer, record.action, 'approve');
      const status = approvalStatus(record, await databaseNow(client));
      let refused: FleetError | undefined;
      if (record.requestedBy === officer.tokenId || record.requestedByName === officer.name) {
        refused = new FleetError('APPROVAL_SELF', `${officer.name} requested ${id}; a second, distinct officer must approve it`, { httpStatus: 403 });
      } else if (status === 'expired') {
        refused = new FleetError('APPROVAL_EXPIRED', `approval request ${id} expired at ${record.expiresAt.toISOString()}; request it again`, { httpStatus: 409 });
      } else if (status !== 'pending') {
        refused = new FleetError('APPROVAL_NOT_PENDING', `approval request ${id} is already ${status}`, { httpStatus: 409 });
      }
      if (refused) return refused;
      await markApproved(client, id, officer.tokenId, officer.name);
      await appendAuditEvents(client, [{ site: this.site, actor: `token:${officer.name}`, action: 'approval.approve', subject: id, details: { action: record.action, requestedBy: record.requestedByName } }]);
      return undefined;
    });
    if (refusal) {
      // Refused attempts are part of the record too (a self-approval is worth seeing).
      await appendAuditEvents(this.pool, [{ site: this.site, actor: `token:${officer.name}`, action: 'approval.refused', subject: id, details: { code: refusal.code } }]);
      throw refusal;
    }
    return (await getApprovalRequest(this.pool, id))!;
  }

  /**
   * Runs an approved request once. The claim (executed_at) commits before the operation runs, so two
   * executors cannot both run it; if the operation fails the claim is released and it can run again
   * (every operation here is idempotent).
   */
  async execute<T>(officer: Principal, id: string, action: ApprovalAction, run: (payload: Record<string, unknown>) => Promise<T>): Promise<{ record: ApprovalRecord; outcome: T }> {
    if (!isUuid(id)) throw notFound(id);
    const record = await withTransaction(this.pool, async (client) => {
      const r = await getApprovalRequest(client, id, true);
      if (!r) throw notFound(id);
      if (r.action !== action) throw new FleetError('APPROVAL_ACTION_MISMATCH', `approval request ${id} is for ${r.action}, not ${action}`, { httpStatus: 409 });
      const status = approvalStatus(r, await databaseNow(client));
      if (status === 'expired') throw new FleetError('APPROVAL_EXPIRED', `approval request ${id} expired at ${r.expiresAt.toISOString()} without being executed; request it again`, { httpStatus: 409 });
      if (status === 'pending') throw new FleetError('APPROVAL_NOT_APPROVED', `approval request ${id} waits for a second officer's approval`, { httpStatus: 409 });
      if (status === 'executed') throw new FleetError('APPROVAL_NOT_PENDING', `approval request ${id} was executed at ${r.executedAt!.toISOString()}`, { httpStatus: 409 });
      if (officer.tokenId !== r.requestedBy && officer.tokenId !== r.approvedBy) throw new FleetError('APPROVAL_EXECUTOR_INVALID', `only the requesting or the approving officer may execute ${id}`, { httpStatus: 403 });
      await markExecuting(client, id, officer.tokenId);
      await appendAuditEvents(client, [{ site: this.site, actor: `token:${officer.name}`, action: 'approval.execute', subject: id, details: { action, requestedBy: r.requestedByName, approvedBy: r.approvedByName } }]);
      return r;
    });
    let outcome: T;
    try {
      outcome = await run(record.payload);
    } catch (err) {
      await releaseExecution(this.pool, id);
      throw err;
    }
    try {
      await recordOutcome(this.pool, id, outcome);
    } catch {
      // A switchover turns this database into a standby: the claim and its audit event are committed
      // and replicated; only the outcome note is lost.
    }
    return { record: (await getApprovalRequest(this.pool, id))!, outcome };
  }
}

/** The API's view of a request. */
export function presentApproval(record: ApprovalRecord, now: Date): Record<string, unknown> {
  return {
    id: record.id,
    action: record.action,
    status: approvalStatus(record, now),
    summary: record.summary,
    requestedBy: record.requestedByName,
    requestedAt: record.requestedAt.toISOString(),
    expiresAt: record.expiresAt.toISOString(),
    ...(record.approvedByName ? { approvedBy: record.approvedByName, approvedAt: record.approvedAt!.toISOString() } : {}),
    ...(record.executedAt ? { executedAt: record.executedAt.toISOString() } : {}),
    ...(record.outcome ? { outcome: record.outcome } : {}),
  };
}
