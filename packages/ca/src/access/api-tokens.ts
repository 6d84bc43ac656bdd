import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { FleetError, type SiteId } from '@fleetpki/core';
import type { Pool, Role } from '@fleetpki/store';
import { accessStoreOf } from './postgres-store.js';
import type { OwnerAccessStore, TokenLookupStore } from './store.js';

export const ROLES = ['factory', 'revocation-officer', 'auditor', 'administrator', 'custodian'] as const satisfies readonly Role[];
export type { Role };

/** Roles whose holders switch meters off, hand keys out or approve: creating or re-scoping such a person is dual-controlled. */
export const PRIVILEGED_ROLES: readonly Role[] = ['administrator', 'revocation-officer', 'custodian', 'auditor'];

/** Who is calling: a person, established from one of their credentials (a token or a client certificate). */
export interface Principal {
  /** The credential used, as approvals and the audit log name it: 'token:<id>' or 'cert:<serial hex>'. */
  readonly credential: string;
  /**
   * What the database's rule functions take as proof of this credential (migrations/0026): the SHA-256
   * of the token's secret ('token:<hex>'), of a console session's secret ('session:<hex>'), or for a
   * client certificate 'cert:<serial hex>', which they refuse (the database cannot check TLS). A bearer
   * proof towards the database: never logged, never in a response or an audit row.
   */
  readonly proof: string;
  readonly personId: string;
  /** The person's name (the audit log's and the approvals' "who"). */
  readonly name: string;
  readonly role: Role;
  /** Set for factories: everything they see and do is scoped to it. */
  readonly manufacturerId: string | null;
}

const TOKEN_PREFIX = 'fpk_';

/** How the audit log names who did something: the person, and the credential they used. */
export function auditActor(principal: Principal): string {
  return `person:${principal.name} via ${principal.credential}`;
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** A fresh token secret (256 random bits) and the SHA-256 that alone is stored. */
export function newTokenSecret(): { token: string; sha256: Buffer } {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, sha256: hashToken(token) };
}

/**
 * Owner only (the installation's bootstrap, owner recovery, tests' and benchmarks' set-up): a token
 * for the person called `name`, who is created with `role` if they do not exist. Nothing here checks
 * dual control: the services' and the CLI's database roles cannot write these rows, and the owner's
 * connection is the documented trust boundary (every use is audited). Everyone else goes through
 * AccessAdministration.
 */
export async function issueApiToken(
  db: OwnerAccessStore | Pool,
  options: { site: SiteId; actor: string; name: string; role: Role; manufacturerId: string | null; expiresDays?: number },
): Promise<string> {
  const store: OwnerAccessStore = accessStoreOf(db);
  if (options.role === 'factory' && !options.manufacturerId) throw new FleetError('TOKEN_SCOPE_MISSING', 'a factory token must name its manufacturer', { httpStatus: 400 });
  if (options.role !== 'factory' && options.manufacturerId) throw new FleetError('TOKEN_SCOPE_INVALID', `only factory tokens are scoped to a manufacturer, not ${options.role}`, { httpStatus: 400 });
  if (options.manufacturerId && !(await store.manufacturerExists(options.manufacturerId))) throw new FleetError('MANUFACTURER_NOT_FOUND', `no manufacturer ${options.manufacturerId.slice(0, 64)}`, { httpStatus: 404 });
  const { token, sha256 } = newTokenSecret();
  const id = randomUUID();
  const expiresAt = options.expiresDays === undefined ? null : new Date(Date.now() + options.expiresDays * 86_400_000);
  await store.ownerTransaction(async (tx) => {
    let person = await tx.findPersonByName(options.name);
    if (person && (person.role !== options.role || person.manufacturerId !== options.manufacturerId)) {
      throw new FleetError('PERSON_ROLE_MISMATCH', `${options.name} is a ${person.role}${person.manufacturerId ? ` of ${person.manufacturerId}` : ''}, not a ${options.role}${options.manufacturerId ? ` of ${options.manufacturerId}` : ''}`, { httpStatus: 409 });
    }
    if (!person) {
      const personId = randomUUID();
      await tx.insertPersonAsOwner({ id: personId, name: options.name, role: options.role, manufacturerId: options.manufacturerId });
      await tx.appendAuditEvents([{ site: options.site, actor: options.actor, action: 'person.create.owner', subject: personId, details: { name: options.name, role: options.role, manufacturerId: options.manufacturerId } }]);
      person = (await tx.findPersonByName(options.name))!;
    }
    await tx.insertApiToken({ id, personId: person.id, name: options.name, tokenSha256: sha256, role: options.role, manufacturerId: options.manufacturerId, expiresAt });
    await tx.appendAuditEvents([{ site: options.site, actor: options.actor, action: 'token.create.owner', subject: id, details: { name: options.name, role: options.role, manufacturerId: options.manufacturerId, person: person.id } }]);
  });
  return token;
}

/**
 * Resolves bearer tokens to principals. Lookups are cached for a few seconds so a busy API does not ask
 * the database on every request; a revoked or expired token stops working within `cacheMs`.
 */
export class TokenAuthenticator {
  private readonly cache = new Map<string, { principal: Principal | null; expiresAt: number; tokenExpiresAt: number | null }>();
  private readonly store: TokenLookupStore;

  /** `db`: the port (a Pool still works for callers not moved to ports yet). */
  constructor(
    db: TokenLookupStore | Pool,
    private readonly cacheMs = 5_000,
  ) {
    this.store = accessStoreOf(db);
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!match) throw new FleetError('AUTH_REQUIRED', 'this endpoint needs an API token: Authorization: Bearer <token>', { httpStatus: 401 });
    const token = match[1]!;
    // Same error for every bad token, so probing learns nothing about which part was wrong. Made only
    // when thrown: an error's stack trace cost ~20 us of every request's main thread.
    const invalid = () => new FleetError('AUTH_INVALID', 'the API token is invalid, expired or revoked', { httpStatus: 401 });
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 100) throw invalid();
    const key = hashToken(token).toString('hex');
    const now = Date.now();
    let entry = this.cache.get(key);
    if (!entry || entry.expiresAt < now) {
      const record = await this.store.findApiTokenByHash(Buffer.from(key, 'hex'));
      const usable = record && !record.revokedAt;
      entry = {
        principal: usable ? { credential: `token:${record.id}`, proof: `token:${key}`, personId: record.personId, name: record.name, role: record.role, manufacturerId: record.manufacturerId } : null,
        expiresAt: now + this.cacheMs,
        tokenExpiresAt: record?.expiresAt?.getTime() ?? null,
      };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, entry);
    }
    if (!entry.principal || (entry.tokenExpiresAt !== null && entry.tokenExpiresAt <= now)) throw invalid();
    return entry.principal;
  }
}
