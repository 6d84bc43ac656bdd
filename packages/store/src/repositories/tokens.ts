import type { Queryable } from '../pool.js';
import { ruleError } from './approvals.js';

export type Role = 'factory' | 'revocation-officer' | 'auditor' | 'administrator' | 'custodian';

/** A token as authentication sees it: the person behind it, and who created the token. */
export interface ApiTokenRecord {
  readonly id: string;
  readonly personId: string;
  /** The person's name: what the audit log and the approvals show. */
  readonly name: string;
  readonly role: Role;
  readonly manufacturerId: string | null;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  readonly createdBy: string | null;
}

/**
 * Owner only (installation bootstrap, recovery, tests' and benchmarks' set-up): a token row written
 * directly. The services' and the CLI's roles cannot (they have no INSERT on api_tokens); they go
 * through createTokenAs.
 */
export async function insertApiToken(db: Queryable, token: { id: string; personId: string; name: string; tokenSha256: Buffer; role: Role; manufacturerId: string | null; expiresAt: Date | null }): Promise<void> {
  await db.query(`INSERT INTO api_tokens (id, name, token_sha256, role, manufacturer_id, expires_at, person_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
    token.id,
    token.name,
    token.tokenSha256,
    token.role,
    token.manufacturerId,
    token.expiresAt,
    token.personId,
  ]);
}

/** A new token for an existing person, by the administrator `actorProof` proves (the database checks, and audits). */
export async function createTokenAs(db: Queryable, token: { id: string; personId: string; name: string; tokenSha256: Buffer; expiresAt: Date | null; actorProof: string; approvalId: string | null }): Promise<void> {
  try {
    await db.query('SELECT fp_token_create($1, $2, $3, $4, $5, $6, $7)', [token.id, token.personId, token.name, token.tokenSha256, token.expiresAt, token.actorProof, token.approvalId]);
  } catch (err) {
    throw ruleError(err);
  }
}

export async function findApiTokenByHash(db: Queryable, tokenSha256: Buffer): Promise<ApiTokenRecord | undefined> {
  const { rows } = await db.query<{ token_id: string; person_id: string; person_name: string; role: Role; manufacturer_id: string | null; expires_at: Date | null; revoked_at: Date | null; created_by: string | null }>(
    `SELECT * FROM fp_token_authenticate($1)`,
    [tokenSha256],
  );
  const r = rows[0];
  return r && { id: r.token_id, personId: r.person_id, name: r.person_name, role: r.role, manufacturerId: r.manufacturer_id, expiresAt: r.expires_at, revokedAt: r.revoked_at, createdBy: r.created_by };
}

export async function upsertManufacturer(db: Queryable, id: string, name: string): Promise<void> {
  await db.query(`INSERT INTO manufacturers (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`, [id, name]);
}

export async function manufacturerExists(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(`SELECT 1 FROM manufacturers WHERE id = $1`, [id]);
  return rowCount === 1;
}

export interface ApiTokenListing {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly manufacturerId: string | null;
  readonly person: string;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

export async function listApiTokens(db: Queryable): Promise<ApiTokenListing[]> {
  const { rows } = await db.query<{ id: string; name: string; role: Role; manufacturer_id: string | null; person: string; created_by: string | null; expires_at: Date | null; revoked_at: Date | null; created_at: Date }>(
    `SELECT t.id, t.name, t.role, t.manufacturer_id, p.name AS person, c.name AS created_by, t.expires_at, t.revoked_at, t.created_at
       FROM api_tokens t JOIN people p ON p.id = t.person_id LEFT JOIN people c ON c.id = t.created_by ORDER BY t.created_at DESC LIMIT 1000`,
  );
  return rows.map((r) => ({ id: r.id, name: r.name, role: r.role, manufacturerId: r.manufacturer_id, person: r.person, createdBy: r.created_by, expiresAt: r.expires_at, revokedAt: r.revoked_at, createdAt: r.created_at }));
}

/** True when the token existed and was live; only an administrator's proven credential may (the database checks, and audits). */
export async function revokeApiTokenAs(db: Queryable, id: string, actorProof: string): Promise<boolean> {
  try {
    const { rows } = await db.query<{ ok: boolean }>('SELECT fp_token_revoke($1, $2) AS ok', [id, actorProof]);
    return rows[0]!.ok;
  } catch (err) {
    throw ruleError(err);
  }
}
