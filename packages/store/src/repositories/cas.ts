import { ruleError } from './approvals.js';
import type { Queryable } from '../pool.js';

export type CaKind = 'root' | 'device-issuing' | 'organisation';

export interface CaRecord {
  readonly id: string;
  readonly kind: CaKind;
  readonly parentId: string | null;
  readonly subjectDn: string;
  readonly keyUri: string;
  readonly keyId: Buffer;
  readonly certificate: Buffer;
  readonly notAfter: Date;
  readonly status: 'active' | 'retired' | 'revoked';
  /** Set when revoked: when, and the RFC 5280 reason code (for the root's ARL). */
  readonly revokedAt?: Date | null;
  readonly revocationReason?: number | null;
}

export async function insertCa(db: Queryable, ca: Omit<CaRecord, 'status'>): Promise<void> {
  await db.query(`INSERT INTO cas (id, kind, parent_id, subject_dn, key_uri, key_id, certificate, not_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
    ca.id,
    ca.kind,
    ca.parentId,
    ca.subjectDn,
    ca.keyUri,
    ca.keyId,
    ca.certificate,
    ca.notAfter,
  ]);
}

export async function listCas(db: Queryable): Promise<CaRecord[]> {
  const { rows } = await db.query<{ id: string; kind: CaKind; parent_id: string | null; subject_dn: string; key_uri: string; key_id: Buffer; certificate: Buffer; not_after: Date; status: CaRecord['status']; revoked_at: Date | null; revocation_reason: number | null }>(
    `SELECT id, kind, parent_id, subject_dn, key_uri, key_id, certificate, not_after, status, revoked_at, revocation_reason FROM cas ORDER BY parent_id IS NOT NULL, created_at, id`,
  );
  return rows.map((r) => ({ id: r.id, kind: r.kind, parentId: r.parent_id, subjectDn: r.subject_dn, keyUri: r.key_uri, keyId: r.key_id, certificate: r.certificate, notAfter: r.not_after, status: r.status, revokedAt: r.revoked_at, revocationReason: r.revocation_reason }));
}

export async function setCaStatus(db: Queryable, id: string, status: CaRecord['status']): Promise<void> {
  await db.query('UPDATE cas SET status = $2 WHERE id = $1', [id, status]);
}

/** Marks a CA revoked with its time and reason; a CA keeps its first revocation. */
/** Marks a CA revoked as the execution of the approved ca.revoke `approvalId` (the database checks; revoked is final). */
export async function markCaRevoked(db: Queryable, id: string, reason: number, approvalId: string): Promise<void> {
  try {
    await db.query('SELECT fp_ca_revoke($1, $2, $3)', [id, reason, approvalId]);
  } catch (err) {
    throw ruleError(err);
  }
}

/** Replaces a CA's certificate (a renewal: same key and subject), keeping the previous one in its history. */
export async function renewCaCertificate(db: Queryable, id: string, certificate: Buffer, notAfter: Date): Promise<void> {
  await db.query('INSERT INTO ca_certificate_history (ca_id, certificate) SELECT id, certificate FROM cas WHERE id = $1', [id]);
  await db.query('UPDATE cas SET certificate = $2, not_after = $3 WHERE id = $1', [id, certificate, notAfter]);
}

/** Every certificate a CA has had before its current one. */
export async function previousCaCertificates(db: Queryable, id: string): Promise<Buffer[]> {
  const { rows } = await db.query<{ certificate: Buffer }>('SELECT certificate FROM ca_certificate_history WHERE ca_id = $1 ORDER BY replaced_at', [id]);
  return rows.map((r) => r.certificate);
}

/** A root rollover's link between a root and its successor (RFC 4210 4.4), migrations/0047. */
export interface RootLinkRecord {
  readonly oldRootId: string;
  readonly newRootId: string;
  /** The new root's key certified by the old root. */
  readonly newWithOld: Buffer;
  /** The old root's key certified by the new root. */
  readonly oldWithNew: Buffer;
}

export async function insertRootLink(db: Queryable, link: RootLinkRecord): Promise<void> {
  await db.query('INSERT INTO root_links (old_root_id, new_root_id, new_with_old, old_with_new) VALUES ($1, $2, $3, $4)', [link.oldRootId, link.newRootId, link.newWithOld, link.oldWithNew]);
}

export async function listRootLinks(db: Queryable): Promise<RootLinkRecord[]> {
  const { rows } = await db.query<{ old_root_id: string; new_root_id: string; new_with_old: Buffer; old_with_new: Buffer }>('SELECT old_root_id, new_root_id, new_with_old, old_with_new FROM root_links ORDER BY created_at');
  return rows.map((r) => ({ oldRootId: r.old_root_id, newRootId: r.new_root_id, newWithOld: r.new_with_old, oldWithNew: r.old_with_new }));
}

/** Retires a root through fp_root_retire (migrations/0049: the database decides whether it may be). */
export async function retireRootCa(db: Queryable, id: string): Promise<void> {
  try {
    await db.query('SELECT fp_root_retire($1)', [id]);
  } catch (err) {
    throw ruleError(err);
  }
}

/** Re-certifies a CA under another issuer (a root rollover): same key and subject, the previous certificate kept in its history. */
export async function recertifyCa(db: Queryable, id: string, parentId: string, certificate: Buffer, notAfter: Date): Promise<void> {
  await renewCaCertificate(db, id, certificate, notAfter);
  await db.query('UPDATE cas SET parent_id = $2 WHERE id = $1', [id, parentId]);
}
