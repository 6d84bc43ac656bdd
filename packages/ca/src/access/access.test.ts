import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ApiTokenListing, ApiTokenRecord, ApprovalAction, ApprovalRecord, AuditEvent, DrillRun, PersonRecord, Role } from '@fleetpki/store';
import { AccessAdministration } from './access-administration.js';
import { TokenAuthenticator, issueApiToken, type Principal } from './api-tokens.js';
import { DualControl } from './dual-control.js';
import { FailoverDrills } from './failover-drills.js';
import { recoverAdministrator } from './owner-recovery.js';
import type { AccessAdministrationStore, DrillRecordStore, DualControlStore, OwnerAccessStore, OwnerAccessTransaction, TokenLookupStore } from './store.js';

/**
 * The access capability over in-memory stores behind its narrow ports: who a credential is, the
 * two-person rule's steps, people and tokens, and the audit rows each writes (registry.test.ts has
 * manufacturers' ranges and client certificates).
 * The database's own rule functions (proofs, approvals) are covered by the integration tests (test/).
 */
const sha256 = (s: string) => createHash('sha256').update(s).digest();
const person = (name: string, role: Role, extra: Partial<PersonRecord> = {}): PersonRecord => ({ id: randomUUID(), name, role, manufacturerId: null, createdBy: null, createdAt: new Date(), disabledAt: null, ...extra });
const principal = (name: string, role: Role, personId = randomUUID()): Principal => ({ credential: `token:${randomUUID()}`, proof: `token:${sha256(name).toString('hex')}`, personId, name, role, manufacturerId: null });

/** People, tokens and the audit log in memory; the *As calls trust the proof (the database checks it for real). */
class MemoryPeople implements AccessAdministrationStore, OwnerAccessStore, TokenLookupStore {
  people: PersonRecord[] = [];
  tokens: (ApiTokenRecord & { sha256: Buffer })[] = [];
  audit: AuditEvent[] = [];
  manufacturers = new Set<string>(['acme']);
  lookups = 0;

  async manufacturerExists(id: string) {
    return this.manufacturers.has(id);
  }
  async findPersonByName(name: string) {
    return this.people.find((p) => p.name === name);
  }
  async listPeople() {
    return [...this.people];
  }
  async listApiTokens(): Promise<ApiTokenListing[]> {
    return this.tokens.map((t): ApiTokenListing => ({ id: t.id, name: t.name, role: t.role, manufacturerId: t.manufacturerId, person: t.personId, createdBy: t.createdBy, createdAt: new Date(), expiresAt: t.expiresAt, revokedAt: t.revokedAt }));
  }
  async rescopePersonAs(change: { personId: string; role: Role }) {
    this.people = this.people.map((p) => (p.id === change.personId ? { ...p, role: change.role } : p));
  }
  async createCredentialAs(c: Parameters<AccessAdministrationStore['createCredentialAs']>[0]) {
    if (c.person) this.people.push(person(c.person.name, c.person.role, { id: c.person.id, manufacturerId: c.person.manufacturerId }));
    const owner = this.people.find((p) => p.id === c.token.personId)!;
    this.tokens.push({ id: c.token.id, personId: owner.id, name: owner.name, role: owner.role, manufacturerId: owner.manufacturerId, expiresAt: c.token.expiresAt, revokedAt: null, createdBy: null, sha256: c.token.tokenSha256 });
  }
  async revokeApiTokenAs(id: string) {
    const token = this.tokens.find((t) => t.id === id && !t.revokedAt);
    if (!token) return false;
    this.tokens = this.tokens.map((t) => (t === token ? { ...t, revokedAt: new Date() } : t));
    return true;
  }
  async findApiTokenByHash(hash: Buffer) {
    this.lookups++;
    return this.tokens.find((t) => t.sha256.equals(hash));
  }
  /** All or nothing, as the PostgreSQL transaction: the changes are applied only when `work` returns. */
  async ownerTransaction<T>(work: (tx: OwnerAccessTransaction) => Promise<T>): Promise<T> {
    const people = [...this.people];
    const tokens = [...this.tokens];
    const audit: AuditEvent[] = [];
    const result = await work({
      findPersonByName: async (name) => people.find((p) => p.name === name),
      insertPersonAsOwner: async (p) => void people.push(person(p.name, p.role, { id: p.id, manufacturerId: p.manufacturerId })),
      insertApiToken: async (t) => void tokens.push({ id: t.id, personId: t.personId, name: t.name, role: t.role, manufacturerId: t.manufacturerId, expiresAt: t.expiresAt, revokedAt: null, createdBy: null, sha256: t.tokenSha256 }),
      findAdministratorsWhoCanApprove: async () => {
        const admins = people.filter((p) => p.role === 'administrator' && !p.disabledAt);
        return admins.length >= 2 ? ([admins[0]!.name, admins[1]!.name] as const) : undefined;
      },
      appendAuditEvents: async (events) => void audit.push(...events),
    });
    [this.people, this.tokens] = [people, tokens];
    this.audit.push(...audit);
    return result;
  }
}

/** Approval requests in memory, with the rule the database enforces most visibly: not the requester's own. */
class MemoryApprovals implements DualControlStore {
  records = new Map<string, ApprovalRecord>();
  audit: AuditEvent[] = [];
  released: string[] = [];
  behind = new Map<string, string[]>();

  async insertApprovalRequest(r: { id: string; action: ApprovalAction; payload: unknown; summary: string; proof: string; ttlSeconds: number }) {
    const record: ApprovalRecord = { id: r.id, action: r.action, payload: r.payload as Record<string, unknown>, summary: r.summary, requestedBy: r.proof, requestedByName: r.proof, requestedByPerson: null, requestedAt: new Date(), expiresAt: new Date(Date.now() + r.ttlSeconds * 1000), approvedBy: null, approvedByName: null, approvedByPerson: null, approvedAt: null, executedBy: null, executedByName: null, executedByPerson: null, executedAt: null, outcome: null };
    this.records.set(r.id, record);
    return record;
  }
  async getApprovalRequest(id: string) {
    return this.records.get(id);
  }
  async listApprovalRequests() {
    return [...this.records.values()];
  }
  async approveRequest(id: string, proof: string) {
    const r = this.records.get(id)!;
    if (r.requestedBy === proof) throw Object.assign(new Error('APPROVAL_SELF'), { code: 'APPROVAL_SELF' });
    const approved = { ...r, approvedBy: proof, approvedByName: proof, approvedAt: new Date() };
    this.records.set(id, approved);
    return approved;
  }
  async claimExecution(id: string, action: ApprovalAction, proof: string) {
    const r = this.records.get(id);
    if (!r || r.action !== action || !r.approvedAt || r.executedAt) throw Object.assign(new Error('APPROVAL_NOT_APPROVED'), { code: 'APPROVAL_NOT_APPROVED' });
    const claimed = { ...r, executedBy: proof, executedAt: new Date() };
    this.records.set(id, claimed);
    return claimed;
  }
  async releaseExecution(id: string) {
    this.released.push(id);
    this.records.set(id, { ...this.records.get(id)!, executedBy: null, executedAt: null });
  }
  async recordOutcome(id: string, outcome: unknown) {
    this.records.set(id, { ...this.records.get(id)!, outcome: outcome as Record<string, unknown> });
  }
  async databaseNow() {
    return new Date();
  }
  async appendAuditEvents(events: readonly AuditEvent[]) {
    this.audit.push(...events);
  }
  async peopleBehind(proof: string) {
    return this.behind.get(proof) ?? [proof];
  }
}

describe('TokenAuthenticator', () => {
  it('knows a token by its SHA-256, refuses a revoked one, and caches the lookup', async () => {
    const store = new MemoryPeople();
    const token = await issueApiToken(store, { site: 'a', actor: 'test', name: 'line-1', role: 'factory', manufacturerId: 'acme' });
    const who = await new TokenAuthenticator(store).authenticate(`Bearer ${token}`);
    assert.equal(who.name, 'line-1');
    assert.equal(who.role, 'factory');
    assert.equal(who.proof, `token:${sha256(token).toString('hex')}`);
    store.tokens = store.tokens.map((t) => ({ ...t, revokedAt: new Date() }));
    const cached = new TokenAuthenticator(store, 60_000);
    await assert.rejects(cached.authenticate(`Bearer ${token}`), { code: 'AUTH_INVALID' });
    const before = store.lookups;
    await assert.rejects(cached.authenticate(`Bearer ${token}`), { code: 'AUTH_INVALID' });
    assert.equal(store.lookups, before, 'the second attempt within the cache time asks no store');
  });

  it('refuses what is not a token without asking the store', async () => {
    const store = new MemoryPeople();
    const auth = new TokenAuthenticator(store);
    await assert.rejects(auth.authenticate(undefined), { code: 'AUTH_REQUIRED' });
    await assert.rejects(auth.authenticate('Bearer not-a-token'), { code: 'AUTH_INVALID' });
    assert.equal(store.lookups, 0);
  });
});

describe('owner access (bootstrap, recovery)', () => {
  it('issueApiToken creates the person once and audits person and token', async () => {
    const store = new MemoryPeople();
    await issueApiToken(store, { site: 'a', actor: 'bootstrap', name: 'alice', role: 'administrator', manufacturerId: null });
    await issueApiToken(store, { site: 'a', actor: 'bootstrap', name: 'alice', role: 'administrator', manufacturerId: null });
    assert.equal(store.people.length, 1);
    assert.equal(store.tokens.length, 2);
    assert.deepEqual(store.audit.map((e) => e.action), ['person.create.owner', 'token.create.owner', 'token.create.owner']);
    await assert.rejects(issueApiToken(store, { site: 'a', actor: 'bootstrap', name: 'alice', role: 'auditor', manufacturerId: null }), { code: 'PERSON_ROLE_MISMATCH' });
    await assert.rejects(issueApiToken(store, { site: 'a', actor: 'bootstrap', name: 'f', role: 'factory', manufacturerId: 'nobody' }), { code: 'MANUFACTURER_NOT_FOUND' });
  });

  it('recoverAdministrator creates one administrator only while no two can approve, and writes nothing when refused', async () => {
    const store = new MemoryPeople();
    await recoverAdministrator(store, { site: 'a', actor: 'recovery:host', name: 'rescue-1', reason: 'both administrators left' });
    assert.deepEqual(store.audit.map((e) => e.action), ['person.create.owner', 'token.create.owner', 'access.recovery.owner']);
    await assert.rejects(recoverAdministrator(store, { site: 'a', actor: 'recovery:host', name: 'rescue-1', reason: 'again' }), { code: 'PERSON_EXISTS' });
    await recoverAdministrator(store, { site: 'a', actor: 'recovery:host', name: 'rescue-2', reason: 'a second one' });
    const rows = store.audit.length;
    await assert.rejects(recoverAdministrator(store, { site: 'a', actor: 'recovery:host', name: 'rescue-3', reason: 'one more' }), { code: 'RECOVERY_REFUSED' });
    assert.equal(store.audit.length, rows);
    assert.equal(store.people.length, 2);
  });
});

describe('DualControl', () => {
  const requester = principal('officer-1', 'revocation-officer');
  const approver = principal('officer-2', 'revocation-officer');

  it('runs an approved request once, records its outcome, and gives the claim back when the operation fails', async () => {
    const store = new MemoryApprovals();
    const dual = new DualControl(store, 'a', 60);
    const request = await dual.request(requester, 'ca.revoke', { caId: 'fpd1' }, 'revoke fpd1');
    await dual.approve(approver, request.id);
    await assert.rejects(dual.execute(approver, request.id, 'ca.revoke', async () => Promise.reject(new Error('HSM gone'))), /HSM gone/);
    assert.deepEqual(store.released, [request.id]);
    const { outcome, record } = await dual.execute(approver, request.id, 'ca.revoke', async (payload) => ({ revoked: payload.caId, secret: 'x' }), (o) => ({ revoked: o.revoked }));
    assert.equal(outcome.secret, 'x');
    assert.deepEqual(record.outcome, { revoked: 'fpd1' }, 'what is recorded leaves the secret out');
    await assert.rejects(dual.execute(approver, request.id, 'ca.revoke', async () => 1), { code: 'APPROVAL_NOT_APPROVED' });
  });

  it('audits a refused step with its code, and refuses ids that are not UUIDs without asking the store', async () => {
    const store = new MemoryApprovals();
    const dual = new DualControl(store, 'a', 60);
    const request = await dual.request(requester, 'ca.revoke', { caId: 'fpd1' }, 'revoke fpd1');
    await assert.rejects(dual.approve({ ...requester, proof: request.requestedBy }, request.id), { code: 'APPROVAL_SELF' });
    assert.deepEqual(store.audit.map((e) => [e.action, e.details?.code, e.details?.step]), [['approval.refused', 'APPROVAL_SELF', 'approve']]);
    await assert.rejects(dual.get('nope'), { code: 'APPROVAL_NOT_FOUND' });
    await assert.rejects(dual.approve(approver, 'nope'), { code: 'APPROVAL_NOT_FOUND' });
  });

  it('FailoverDrills audits a drill start with who requested and who approved it', async () => {
    const store = Object.assign(new MemoryApprovals(), { listDrillRuns: async (): Promise<DrillRun[]> => [] }) satisfies DrillRecordStore;
    const dual = new DualControl(store, 'a', 60);
    const admin1 = principal('admin-1', 'administrator');
    const admin2 = principal('admin-2', 'administrator');
    const request = await dual.request(admin1, 'drill.failover', {}, 'failover drill');
    await dual.approve(admin2, request.id);
    const started = await new FailoverDrills(store, 'a', dual).start(admin2, request.id, async () => ({ pid: 42, log: '/tmp/drill.log' }));
    assert.equal(started.pid, 42);
    const row = store.audit.find((e) => e.action === 'drill.start')!;
    assert.equal(row.actor, `person:admin-2 via ${admin2.credential}`);
    assert.deepEqual(row.details, { pid: 42, log: '/tmp/drill.log', approval: request.id, requestedBy: request.requestedByName, approvedBy: admin2.proof });
  });
});

describe('AccessAdministration', () => {
  const admin = principal('admin-1', 'administrator');

  it('creates a factory identity and its token with one administrator, and revokes the token', async () => {
    const store = new MemoryPeople();
    const access = new AccessAdministration(store, 'a', new DualControl(new MemoryApprovals(), 'a', 60));
    const issued = await access.issueToken(admin, { name: 'line-7', role: 'factory', manufacturerId: 'acme' });
    assert.equal(issued.personCreated, true);
    assert.equal((await access.tokens()).length, 1);
    assert.equal((await access.people())[0]!.name, 'line-7');
    assert.equal((await access.issueToken(admin, { name: 'line-7', role: 'factory', manufacturerId: 'acme' })).personCreated, false);
    await access.revokeToken(admin, issued.tokenId);
    await assert.rejects(access.revokeToken(admin, issued.tokenId), { code: 'TOKEN_NOT_FOUND' });
    await assert.rejects(access.revokeToken(admin, 'not-a-uuid'), { code: 'TOKEN_NOT_FOUND' });
  });

  it('refuses a privileged person without an approval, a factory without its manufacturer, and a role change by the back door', async () => {
    const store = new MemoryPeople();
    const access = new AccessAdministration(store, 'a', new DualControl(new MemoryApprovals(), 'a', 60));
    await assert.rejects(access.issueToken(admin, { name: 'officer', role: 'revocation-officer', manufacturerId: null }), { code: 'APPROVAL_REQUIRED' });
    await assert.rejects(access.issueToken(admin, { name: 'line', role: 'factory', manufacturerId: null }), { code: 'TOKEN_SCOPE_MISSING' });
    await assert.rejects(access.issueToken(admin, { name: 'line', role: 'factory', manufacturerId: 'unknown' }), { code: 'MANUFACTURER_NOT_FOUND' });
    await access.issueToken(admin, { name: 'line', role: 'factory', manufacturerId: 'acme' });
    await assert.rejects(access.issueToken(admin, { name: 'line', role: 'auditor', manufacturerId: null }), { code: 'PERSON_ROLE_MISMATCH' });
    assert.equal(store.people.length, 1);
  });

  it('creates a privileged person only as the execution of an approved person.create for exactly them', async () => {
    const store = new MemoryPeople();
    const approvals = new MemoryApprovals();
    const dual = new DualControl(approvals, 'a', 60);
    const access = new AccessAdministration(store, 'a', dual);
    const admin2 = principal('admin-2', 'administrator');
    const wrong = await dual.request(admin, 'person.create', { name: 'someone-else', role: 'custodian' }, 'create someone-else');
    await dual.approve(admin2, wrong.id);
    await assert.rejects(access.issueToken(admin, { name: 'carol', role: 'custodian', manufacturerId: null, approvalId: wrong.id }), { code: 'APPROVAL_ACTION_MISMATCH' });
    const right = await dual.request(admin, 'person.create', { name: 'carol', role: 'custodian' }, 'create carol');
    await dual.approve(admin2, right.id);
    const issued = await access.issueToken(admin, { name: 'carol', role: 'custodian', manufacturerId: null, approvalId: right.id });
    assert.equal(issued.person.role, 'custodian');
    assert.deepEqual(approvals.records.get(right.id)!.outcome, { person: 'carol', role: 'custodian', tokenId: issued.tokenId }, 'the outcome names the token, never its secret');
  });
});
