import { randomUUID } from 'node:crypto';
import { FleetError, type SiteId, isUuid } from '@fleetpki/core';
import type { ApprovalAction, ApprovalRecord, Pool, Role } from '@fleetpki/store';
import { accessStoreOf } from './postgres-store.js';
import type { DualControlStore, PeopleBehindStore } from './store.js';
import type { Principal } from './api-tokens.js';

export type { ApprovalAction, ApprovalRecord };

/**
 * The two-person rule for the operations that can switch meters off, hand keys out or give someone
 * those powers: a request names the exact operation, a second person approves it, one of the two
 * executes it once, before it expires. "Second person" means nobody in common: behind a credential
 * stand its holder and whoever created it, so an administrator who mints two officer tokens cannot
 * request with one and approve with the other. The rule is enforced by the database (fp_approval_*,
 * migrations/0015_people.sql, 0026_credential_proofs.sql and 0032: each step takes proof of the credential,
 * not its id, and writes its own audit row); this table is its mirror for messages and documentation.
 */
export const DUAL_CONTROL_ROLES: Readonly<Record<ApprovalAction, readonly Role[]>> = {
  'revocation.bulk': ['revocation-officer', 'administrator'],
  'ca.revoke': ['revocation-officer', 'administrator'],
  'master-key.rotate': ['custodian'],
  'site.switchover': ['administrator'],
  'drill.failover': ['administrator'],
  'person.create': ['administrator'],
  'person.rescope': ['administrator'],
  'credential.create': ['administrator'],
  'ca.root-rollover': ['custodian'],
  'ca.root-custody': ['custodian'],
};

export type ApprovalStatus = 'pending' | 'approved' | 'executed' | 'expired';

export function approvalStatus(record: ApprovalRecord, now: Date): ApprovalStatus {
  if (record.executedAt) return 'executed';
  if (record.expiresAt.getTime() <= now.getTime()) return 'expired';
  return record.approvedAt ? 'approved' : 'pending';
}

const notFound = (id: string) => new FleetError('APPROVAL_NOT_FOUND', `no approval request ${id.slice(0, 40)}`, { httpStatus: 404 });

export class DualControl {
  private readonly store: DualControlStore;

  /** `db`: the port (a Pool still works for callers not moved to ports yet). */
  constructor(
    db: DualControlStore | Pool,
    private readonly site: SiteId,
    private readonly ttlMinutes: number,
  ) {
    this.store = accessStoreOf(db);
  }

  /** The database's clock, by which approvals expire (what an approval's status is judged at). */
  async now(): Promise<Date> {
    return this.store.databaseNow();
  }

  /** Open and recent requests, newest first. */
  async list(limit: number): Promise<ApprovalRecord[]> {
    return this.store.listApprovalRequests({ limit });
  }

  async request(person: Principal, action: ApprovalAction, payload: Record<string, unknown>, summary: string): Promise<ApprovalRecord> {
    // The database function proves the credential and writes the audit row (migrations/0026).
    return this.store.insertApprovalRequest({ id: randomUUID(), action, payload, summary, proof: person.proof, ttlSeconds: this.ttlMinutes * 60 });
  }

  async get(id: string): Promise<ApprovalRecord> {
    if (!isUuid(id)) throw notFound(id);
    const record = await this.store.getApprovalRequest(id);
    if (!record) throw notFound(id);
    return record;
  }

  /** Refused attempts are part of the record too (a self-approval is worth seeing). */
  private async refused(person: Principal, id: string, step: string, err: unknown): Promise<never> {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) {
      await this.store.appendAuditEvents([{ site: this.site, actor: `person:${person.name}`, action: 'approval.refused', subject: id, details: { step, code, credential: person.credential } }]).catch(() => undefined);
    }
    throw err;
  }

  async approve(person: Principal, id: string): Promise<ApprovalRecord> {
    if (!isUuid(id)) throw notFound(id);
    try {
      return await this.store.approveRequest(id, person.proof);
    } catch (err) {
      return this.refused(person, id, 'approve', err);
    }
  }

  /**
   * Runs an approved request once. The claim commits before the operation runs, so two executors
   * cannot both run it; if the operation fails the claim is released and it can run again (every
   * operation here is idempotent).
   */
  async execute<T>(person: Principal, id: string, action: ApprovalAction, run: (payload: Record<string, unknown>) => Promise<T>, recorded: (outcome: T) => unknown = (outcome) => outcome): Promise<{ record: ApprovalRecord; outcome: T }> {
    if (!isUuid(id)) throw notFound(id);
    let record: ApprovalRecord;
    try {
      record = await this.store.claimExecution(id, action, person.proof);
    } catch (err) {
      return this.refused(person, id, 'execute', err);
    }
    let outcome: T;
    try {
      outcome = await run(record.payload);
    } catch (err) {
      await this.store.releaseExecution(id, person.proof);
      throw err;
    }
    try {
      // What is recorded may be less than what the caller gets back (never a credential's secret).
      await this.store.recordOutcome(id, recorded(outcome), person.proof);
    } catch {
      // A switchover turns this database into a standby: the claim and its audit event are committed
      // and replicated; only the outcome note is lost.
    }
    return { record: (await this.store.getApprovalRequest(id))!, outcome };
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
    requestedWith: record.requestedBy,
    requestedAt: record.requestedAt.toISOString(),
    expiresAt: record.expiresAt.toISOString(),
    ...(record.approvedByName ? { approvedBy: record.approvedByName, approvedWith: record.approvedBy, approvedAt: record.approvedAt!.toISOString() } : {}),
    ...(record.executedAt ? { executedBy: record.executedByName ?? undefined, executedWith: record.executedBy, executedAt: record.executedAt.toISOString() } : {}),
    ...(record.outcome ? { outcome: record.outcome } : {}),
  };
}

/**
 * Two people present together, for the one decision that cannot wait for an approval to be written: a
 * forced failover while the active site's database (where approvals live) is out of reach. Both
 * credentials are checked on the standby (read-only); the two people, and whoever created each one's
 * credential, must have no one in common, as for an approval (migrations/0015_people.sql).
 */
export async function assertTwoPeopleTogether(db: PeopleBehindStore | Pool, first: Principal, second: Principal, roles: readonly Role[], what: string): Promise<void> {
  for (const p of [first, second]) {
    if (!roles.includes(p.role)) throw new FleetError('ROLE_FORBIDDEN', `${what} takes two people with role ${roles.join(' or ')}; ${p.name} is ${p.role}`, { httpStatus: 403 });
  }
  // Everyone behind each credential: its holder, its creator, and who created them, up the chain (migrations/0028).
  const store: PeopleBehindStore = accessStoreOf(db);
  const behind = (p: Principal) => store.peopleBehind(p.proof);
  const [a, b] = [new Set(await behind(first)), await behind(second)];
  if (b.some((id) => a.has(id))) {
    throw new FleetError('APPROVAL_SAME_PEOPLE', `${what} takes two different people: ${first.name} and ${second.name} have someone in common (the same person, or one created the other's credential or the other)`, { httpStatus: 403 });
  }
}

