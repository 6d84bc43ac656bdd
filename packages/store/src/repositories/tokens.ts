import type { Queryable } from '../pool.js';

export type Role = 'factory' | 'revocation-officer' | 'auditor' | 'administrator' | 'custodian';

export interface ApiTokenRecord {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly manufacturerId: string | null;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

export async function insertApiToken(db: Queryable, token: { id: string; name: string; tokenSha256: Buffer; role: Role; manufacturerId: string | null; expiresAt: Date | null }): Promise<void> {
  await db.query(`INSERT INTO api_tokens (id, name, token_sha256, role, manufacturer_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`, [
    token.id,
    token.name,
    token.tokenSha256,
    token.role,
    token.manufacturerId,
    token.expiresAt,
  ]);
}

export async function findApiTokenByHash(db: Queryable, tokenSha256: Buffer): Promise<ApiTokenRecord | undefined> {
  const { rows } = await db.query<{ id: string; name: string; role: Role; manufacturer_id: string | null; expires_at: Date | null; revoked_at: Date | null }>(
    `SELECT id, name, role, manufacturer_id, expires_at, revoked_at FROM api_tokens WHERE token_sha256 = $1`,
    [tokenSha256],
  );
  const r = rows[0];
  return r && { id: r.id, name: r.name, role: r.role, manufacturerId: r.manufacturer_id, expiresAt: r.expires_at, revokedAt: r.revoked_at };
}

export async function upsertManufacturer(db: Queryable, id: string, name: string): Promise<void> {
  await db.query(`INSERT INTO manufacturers (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`, [id, name]);
}

export async function manufacturerExists(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(`SELECT 1 FROM manufacturers WHERE id = $1`, [id]);
  return rowCount === 1;
}

export async function listApiTokens(db: Queryable): Promise<(ApiTokenRecord & { createdAt: Date })[]> {
  const { rows } = await db.query<{ id: string; name: string; role: Role; manufacturer_id: string | null; expires_at: Date | null; revoked_at: Date | null; created_at: Date }>(
    `SELECT id, name, role, manufacturer_id, expires_at, revoked_at, created_at FROM api_tokens ORDER BY created_at DESC LIMIT 1000`,
  );
  return rows.map((r) => ({ id: r.id, name: r.name, role: r.role, manufacturerId: r.manufacturer_id, expiresAt: r.expires_at, revokedAt: r.revoked_at, createdAt: r.created_at }));
}

/** True when the token existed and was live. */
export async function revokeApiToken(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(`UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, [id]);
  return rowCount === 1;
}
