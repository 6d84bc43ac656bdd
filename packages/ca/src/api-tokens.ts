import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { FleetError, type SiteId, isUuid } from '@fleetpki/core';
import { appendAuditEvents, findApiTokenByHash, insertApiToken, manufacturerExists, revokeApiToken, withTransaction, type Pool, type Role } from '@fleetpki/store';

export const ROLES = ['factory', 'revocation-officer', 'auditor', 'administrator', 'custodian'] as const satisfies readonly Role[];
export type { Role };

/** Who is calling, as established from their API token. */
export interface Principal {
  readonly tokenId: string;
  readonly name: string;
  readonly role: Role;
  /** Set for factories: everything they see and do is scoped to it. */
  readonly manufacturerId: string | null;
}

const TOKEN_PREFIX = 'fpk_';

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Creates a token (256 random bits), stores only its SHA-256, and returns it for showing once. */
export async function issueApiToken(
  pool: Pool,
  options: { site: SiteId; actor: string; name: string; role: Role; manufacturerId: string | null; expiresDays?: number },
): Promise<string> {
  if (options.role === 'factory' && !options.manufacturerId) throw new FleetError('TOKEN_SCOPE_MISSING', 'a factory token must name its manufacturer', { httpStatus: 400 });
  if (options.role !== 'factory' && options.manufacturerId) throw new FleetError('TOKEN_SCOPE_INVALID', `only factory tokens are scoped to a manufacturer, not ${options.role}`, { httpStatus: 400 });
  if (options.manufacturerId && !(await manufacturerExists(pool, options.manufacturerId))) throw new FleetError('MANUFACTURER_NOT_FOUND', `no manufacturer ${options.manufacturerId.slice(0, 64)}`, { httpStatus: 404 });
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const id = randomUUID();
  const expiresAt = options.expiresDays === undefined ? null : new Date(Date.now() + options.expiresDays * 86_400_000);
  await withTransaction(pool, async (client) => {
    await insertApiToken(client, { id, name: options.name, tokenSha256: hashToken(token), role: options.role, manufacturerId: options.manufacturerId, expiresAt });
    await appendAuditEvents(client, [{ site: options.site, actor: options.actor, action: 'token.create', subject: id, details: { name: options.name, role: options.role, manufacturerId: options.manufacturerId } }]);
  });
  return token;
}

/** Revokes a token (it stops working within the authenticator's cache time, 5 s). */
export async function revokeToken(pool: Pool, options: { site: SiteId; actor: string; id: string }): Promise<void> {
  if (!isUuid(options.id)) throw new FleetError('TOKEN_NOT_FOUND', `no live token ${options.id.slice(0, 40)}`, { httpStatus: 404 });
  await withTransaction(pool, async (client) => {
    if (!(await revokeApiToken(client, options.id))) throw new FleetError('TOKEN_NOT_FOUND', `no live token ${options.id}`, { httpStatus: 404 });
    await appendAuditEvents(client, [{ site: options.site, actor: options.actor, action: 'token.revoke', subject: options.id }]);
  });
}

/**
 * Resolves bearer tokens to principals. Lookups are cached for a few seconds so a busy API does not ask
 * the database on every request; a revoked or expired token stops working within `cacheMs`.
 */
export class TokenAuthenticator {
  private readonly cache = new Map<string, { principal: Principal | null; expiresAt: number; tokenExpiresAt: number | null }>();

  constructor(
    private readonly pool: Pool,
    private readonly cacheMs = 5_000,
  ) {}

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!match) throw new FleetError('AUTH_REQUIRED', 'this endpoint needs an API token: Authorization: Bearer <token>', { httpStatus: 401 });
    const token = match[1]!;
    // Same error for every bad token, so probing learns nothing about which part was wrong.
    const invalid = new FleetError('AUTH_INVALID', 'the API token is invalid, expired or revoked', { httpStatus: 401 });
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 100) throw invalid;
    const key = hashToken(token).toString('hex');
    const now = Date.now();
    let entry = this.cache.get(key);
    if (!entry || entry.expiresAt < now) {
      const record = await findApiTokenByHash(this.pool, Buffer.from(key, 'hex'));
      const usable = record && !record.revokedAt;
      entry = {
        principal: usable ? { tokenId: record.id, name: record.name, role: record.role, manufacturerId: record.manufacturerId } : null,
        expiresAt: now + this.cacheMs,
        tokenExpiresAt: record?.expiresAt?.getTime() ?? null,
      };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, entry);
    }
    if (!entry.principal || (entry.tokenExpiresAt !== null && entry.tokenExpiresAt <= now)) throw invalid;
    return entry.principal;
  }
}
