import { randomUUID } from 'node:crypto';
import { FleetError, type SiteId, isUuid } from '@fleetpki/core';
import type { ApiTokenListing, PersonRecord, Pool, Role } from '@fleetpki/store';
import { accessStoreOf } from './postgres-store.js';
import type { AccessAdministrationStore } from './store.js';
import { PRIVILEGED_ROLES, newTokenSecret, type Principal } from './api-tokens.js';
import type { DualControl } from './dual-control.js';

export interface IssuedCredential {
  readonly token: string;
  readonly tokenId: string;
  readonly person: { readonly id: string; readonly name: string; readonly role: Role; readonly manufacturerId: string | null };
  readonly personCreated: boolean;
}

/**
 * People and their credentials, as administrators manage them (API routes and the CLI alike). A
 * factory identity and its tokens are one administrator's to create. A privileged person — anyone who
 * could revoke, approve, hold custody or audit — is created, re-scoped or given another credential only
 * as the execution of an approval (person.create, person.rescope, credential.create) that a second
 * administrator approved; the database checks the same, whoever calls it.
 */
export class AccessAdministration {
  private readonly store: AccessAdministrationStore;

  /** `db`: the port (a Pool still works for callers not moved to ports yet). */
  constructor(
    db: AccessAdministrationStore | Pool,
    private readonly site: SiteId,
    private readonly dualControl: DualControl,
  ) {
    this.store = accessStoreOf(db);
  }

  /** People and their roles (administrators and auditors read them). */
  async people(): Promise<PersonRecord[]> {
    return this.store.listPeople();
  }

  /** The person called `name`, if there is one. */
  async person(name: string): Promise<PersonRecord | undefined> {
    return this.store.findPersonByName(name);
  }

  /** API tokens, never their secrets. */
  async tokens(): Promise<ApiTokenListing[]> {
    return this.store.listApiTokens();
  }

  /** Revokes a token as the administrator `admin` (it stops working within the authenticator's cache time, 5 s); the database audits it. */
  async revokeToken(admin: Principal, id: string): Promise<void> {
    if (!isUuid(id)) throw new FleetError('TOKEN_NOT_FOUND', `no live token ${id.slice(0, 40)}`, { httpStatus: 404 });
    if (!(await this.store.revokeApiTokenAs(id, admin.proof))) throw new FleetError('TOKEN_NOT_FOUND', `no live token ${id}`, { httpStatus: 404 });
  }

  /**
   * A token for the person called `name`; the person is created first when missing (with `role`). For a
   * privileged person `approvalId` names the approved person.create (new) or credential.create (existing).
   */
  async issueToken(admin: Principal, request: { name: string; role: Role; manufacturerId: string | null; expiresDays?: number; approvalId?: string }): Promise<IssuedCredential> {
    if (request.role === 'factory' && !request.manufacturerId) throw new FleetError('TOKEN_SCOPE_MISSING', 'a factory token must name its manufacturer', { httpStatus: 400 });
    if (request.role !== 'factory' && request.manufacturerId) throw new FleetError('TOKEN_SCOPE_INVALID', `only factory tokens are scoped to a manufacturer, not ${request.role}`, { httpStatus: 400 });
    if (request.manufacturerId && !(await this.store.manufacturerExists(request.manufacturerId))) throw new FleetError('MANUFACTURER_NOT_FOUND', `no manufacturer ${request.manufacturerId.slice(0, 64)}`, { httpStatus: 404 });
    const existing = await this.store.findPersonByName(request.name);
    if (existing && (existing.role !== request.role || existing.manufacturerId !== request.manufacturerId)) {
      throw new FleetError('PERSON_ROLE_MISMATCH', `${request.name} is a ${existing.role}${existing.manufacturerId ? ` of ${existing.manufacturerId}` : ''}, not a ${request.role}${request.manufacturerId ? ` of ${request.manufacturerId}` : ''}; changing a role is person.rescope`, { httpStatus: 409 });
    }
    const privileged = PRIVILEGED_ROLES.includes(request.role);
    if (!privileged) return this.createCredential(admin, request, existing, null);
    if (!request.approvalId || !isUuid(request.approvalId)) {
      throw new FleetError('APPROVAL_REQUIRED', `${existing ? `a credential for ${request.name}` : `creating ${request.name}`} (a ${request.role}) needs an approved ${existing ? 'credential.create' : 'person.create'} request: ask for it (POST /v1/approvals), have a second administrator approve it, then give its id`, { httpStatus: 403 });
    }
    const { outcome } = await this.dualControl.execute(
      admin,
      request.approvalId,
      existing ? 'credential.create' : 'person.create',
      (payload) => this.createCredential(admin, request, existing, request.approvalId!, payload),
      (issued) => ({ person: issued.person.name, role: issued.person.role, tokenId: issued.tokenId }),
    );
    return outcome;
  }

  /**
   * Another kind of credential (a client certificate) for an existing person, issued by `issue`: for a
   * privileged person only as the execution of an approved credential.create for them.
   */
  async issueOtherCredential<T>(admin: Principal, request: { name: string; approvalId?: string }, issue: (person: PersonRecord) => Promise<T>): Promise<T> {
    if (admin.role !== 'administrator') throw new FleetError('ROLE_FORBIDDEN', 'only administrators create credentials', { httpStatus: 403 });
    const person = await this.store.findPersonByName(request.name);
    if (!person) throw new FleetError('PERSON_NOT_FOUND', `no person ${request.name.slice(0, 64)}: create them first (tokens create)`, { httpStatus: 404 });
    if (!PRIVILEGED_ROLES.includes(person.role)) return issue(person);
    if (!request.approvalId || !isUuid(request.approvalId)) throw new FleetError('APPROVAL_REQUIRED', `a credential for ${person.name} (a ${person.role}) needs an approved credential.create request`, { httpStatus: 403 });
    const { outcome } = await this.dualControl.execute(admin, request.approvalId, 'credential.create', async (payload) => {
      if (payload.person !== person.id) throw new FleetError('APPROVAL_ACTION_MISMATCH', `approval ${request.approvalId} is for another person`, { httpStatus: 409 });
      return issue(person);
    }, () => ({ person: person.name }));
    return outcome;
  }

  /** Moves a person to another role: only as an approved person.rescope, never one's own. */
  async rescope(admin: Principal, request: { name: string; role: Role; approvalId: string }): Promise<PersonRecord> {
    const person = await this.store.findPersonByName(request.name);
    if (!person) throw new FleetError('PERSON_NOT_FOUND', `no person ${request.name.slice(0, 64)}`, { httpStatus: 404 });
    if (!isUuid(request.approvalId)) throw new FleetError('APPROVAL_NOT_FOUND', `no approval request ${request.approvalId.slice(0, 40)}`, { httpStatus: 404 });
    await this.dualControl.execute(admin, request.approvalId, 'person.rescope', async () => {
      // The database function checks the approval and the proof, and writes the audit row (migrations/0026).
      await this.store.rescopePersonAs({ personId: person.id, role: request.role, actorProof: admin.proof, approvalId: request.approvalId });
      return { person: person.name, from: person.role, to: request.role };
    });
    return (await this.store.findPersonByName(request.name))!;
  }

  private async createCredential(admin: Principal, request: { name: string; role: Role; manufacturerId: string | null; expiresDays?: number }, existing: PersonRecord | undefined, approvalId: string | null, approved?: Record<string, unknown>): Promise<IssuedCredential> {
    if (approved && (existing ? approved.person !== existing.id : approved.name !== request.name || approved.role !== request.role)) {
      throw new FleetError('APPROVAL_ACTION_MISMATCH', `approval ${approvalId} was for ${JSON.stringify(approved)}, not for this`, { httpStatus: 409 });
    }
    const { token, sha256 } = newTokenSecret();
    const tokenId = randomUUID();
    const personId = existing?.id ?? randomUUID();
    const expiresAt = request.expiresDays === undefined ? null : new Date(Date.now() + request.expiresDays * 86_400_000);
    // Each function proves the administrator's credential and writes its own audit row (migrations/0026).
    await this.store.createCredentialAs({
      ...(existing ? {} : { person: { id: personId, name: request.name, role: request.role, manufacturerId: request.manufacturerId, actorProof: admin.proof, approvalId } }),
      token: { id: tokenId, personId, name: request.name, tokenSha256: sha256, expiresAt, actorProof: admin.proof, approvalId },
    });
    return { token, tokenId, person: { id: personId, name: request.name, role: request.role, manufacturerId: request.manufacturerId }, personCreated: !existing };
  }
}
