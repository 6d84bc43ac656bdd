import type { Pool } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';

/** A factory's CMP MAC reference (migrations/0023_cmp.sql); the secret is derived, never stored. */
export interface CmpSecretRecord {
  readonly reference: string;
  readonly manufacturerId: string;
  readonly masterLabel: string;
  readonly version: number;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

interface SecretRow {
  reference: string;
  manufacturer_id: string;
  master_label: string;
  version: number;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
}

const toSecret = (r: SecretRow): CmpSecretRecord => ({ reference: r.reference, manufacturerId: r.manufacturer_id, masterLabel: r.master_label, version: r.version, createdBy: r.created_by, createdAt: r.created_at, revokedAt: r.revoked_at });

export async function getCmpSecret(pool: Pool, reference: string): Promise<CmpSecretRecord | undefined> {
  const { rows } = await pool.query<SecretRow>('SELECT * FROM cmp_secrets WHERE reference = $1', [reference]);
  return rows[0] && toSecret(rows[0]);
}

/**
 * Records a reference (version 1), or a new version of an existing one of the same manufacturer (the
 * previous secret stops working), audited. Refused ("foreign") when the reference belongs to another
 * manufacturer.
 */
export async function issueCmpSecret(pool: Pool, site: 'a' | 'b', s: { reference: string; manufacturerId: string; masterLabel: string; actor: string }): Promise<CmpSecretRecord | 'foreign' | 'unknown-manufacturer'> {
  return withTransaction(pool, async (client) => {
    if ((await client.query('SELECT 1 FROM manufacturers WHERE id = $1', [s.manufacturerId])).rowCount !== 1) return 'unknown-manufacturer';
    const { rows } = await client.query<SecretRow>(
      `INSERT INTO cmp_secrets (reference, manufacturer_id, master_label, created_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (reference) DO UPDATE SET version = cmp_secrets.version + 1, master_label = EXCLUDED.master_label, created_by = EXCLUDED.created_by, created_at = now(), revoked_at = NULL
         WHERE cmp_secrets.manufacturer_id = EXCLUDED.manufacturer_id
       RETURNING *`,
      [s.reference, s.manufacturerId, s.masterLabel, s.actor],
    );
    const row = rows[0];
    if (!row) return 'foreign';
    await appendAuditEvents(client, [{ site, actor: s.actor, action: 'cmp.secret.issue', subject: s.reference, details: { manufacturer: s.manufacturerId, version: row.version } }]);
    return toSecret(row);
  });
}

export async function revokeCmpSecret(pool: Pool, site: 'a' | 'b', reference: string, actor: string): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query('UPDATE cmp_secrets SET revoked_at = now() WHERE reference = $1 AND revoked_at IS NULL', [reference]);
    if (rowCount !== 1) return false;
    await appendAuditEvents(client, [{ site, actor, action: 'cmp.secret.revoke', subject: reference }]);
    return true;
  });
}

export type CmpTransactionStatus = 'open' | 'waiting' | 'confirmed' | 'rejected' | 'unconfirmed' | 'refused' | 'done';

export interface CmpTransactionRecord {
  readonly transactionId: Buffer;
  readonly bodyType: 'ir' | 'cr' | 'p10cr' | 'kur' | 'rr';
  readonly sender: string;
  readonly status: CmpTransactionStatus;
  readonly certificateSerial: Buffer | null;
  readonly certificateSha256: Buffer | null;
  readonly responseNonce: Buffer | null;
  /**
   * The certificate was signed for this transaction (not an earlier certificate of the same key given
   * back): only then may a rejecting certConf revoke it (migrations/0030_cmp_rejection_scope.sql).
   */
  readonly issuedInTransaction: boolean;
}

/** Starts a transaction; false when its transactionID was used before (a replay, or a client's bug). */
export async function openCmpTransaction(pool: Pool, site: 'a' | 'b', t: { transactionId: Buffer; bodyType: CmpTransactionRecord['bodyType']; sender: string }): Promise<boolean> {
  const { rowCount } = await pool.query(`INSERT INTO cmp_transactions (transaction_id, body_type, sender, status, site) VALUES ($1, $2, $3, 'open', $4) ON CONFLICT (transaction_id) DO NOTHING`, [t.transactionId, t.bodyType, t.sender, site]);
  return rowCount === 1;
}

export async function getCmpTransaction(pool: Pool, transactionId: Buffer): Promise<CmpTransactionRecord | undefined> {
  const { rows } = await pool.query<{ transaction_id: Buffer; body_type: CmpTransactionRecord['bodyType']; sender: string; status: CmpTransactionStatus; certificate_serial: Buffer | null; certificate_sha256: Buffer | null; response_nonce: Buffer | null; issued_in_transaction: boolean }>(
    'SELECT transaction_id, body_type, sender, status, certificate_serial, certificate_sha256, response_nonce, issued_in_transaction FROM cmp_transactions WHERE transaction_id = $1',
    [transactionId],
  );
  const r = rows[0];
  return r && { transactionId: r.transaction_id, bodyType: r.body_type, sender: r.sender, status: r.status, certificateSerial: r.certificate_serial, certificateSha256: r.certificate_sha256, responseNonce: r.response_nonce, issuedInTransaction: r.issued_in_transaction };
}

/**
 * Moves a transaction from `from` to `to` (with the certificate it answered, if any), and writes the
 * audit row given, in one transaction. False when it was not in `from` (a concurrent certConf won).
 * `issuedInTransaction` (the certificate was signed for this transaction) is recorded only if the
 * certificate's intent was recorded after the transaction opened: a certificate given back to a
 * request that repeats an enrolled key can never be marked as this transaction's.
 */
export async function settleCmpTransaction(
  pool: Pool,
  site: 'a' | 'b',
  transactionId: Buffer,
  from: CmpTransactionStatus,
  to: CmpTransactionStatus,
  values: { certificateSerial?: Buffer; certificateSha256?: Buffer; responseNonce?: Buffer; issuedInTransaction?: boolean } = {},
  audit?: { actor: string; action: string; subject: string; details?: Record<string, unknown> },
): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `UPDATE cmp_transactions t SET status = $3, certificate_serial = coalesce($4, t.certificate_serial), certificate_sha256 = coalesce($5, t.certificate_sha256), response_nonce = coalesce($6, t.response_nonce), updated_at = now(),
              issued_in_transaction = t.issued_in_transaction OR ($7 AND $4::bytea IS NOT NULL AND EXISTS (SELECT 1 FROM issuance_intents i WHERE i.serial = $4 AND i.created_at >= t.created_at))
        WHERE t.transaction_id = $1 AND t.status = $2`,
      [transactionId, from, to, values.certificateSerial ?? null, values.certificateSha256 ?? null, values.responseNonce ?? null, values.issuedInTransaction ?? false],
    );
    if (rowCount !== 1) return false;
    if (audit) await appendAuditEvents(client, [{ site, ...audit }]);
    return true;
  });
}

/**
 * Certificates answered but never confirmed within `olderThanSeconds`: marked unconfirmed, one audit
 * row each. The certificate itself was issued completely (intent, signature, store) and stays valid; a
 * device that never got it enrols again with the same key and gets the same certificate back.
 */
export async function expireWaitingCmpTransactions(pool: Pool, site: 'a' | 'b', olderThanSeconds: number, actor: string): Promise<number> {
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ transaction_id: Buffer; certificate_serial: Buffer | null }>(
      `UPDATE cmp_transactions SET status = 'unconfirmed', updated_at = now() WHERE status = 'waiting' AND updated_at < now() - make_interval(secs => $1)
       RETURNING transaction_id, certificate_serial`,
      [olderThanSeconds],
    );
    if (rows.length) await appendAuditEvents(client, rows.map((r) => ({ site, actor, action: 'cmp.certificate.unconfirmed', subject: r.certificate_serial?.toString('hex') ?? '', details: { transaction: r.transaction_id.toString('hex'), waitedSeconds: olderThanSeconds } })));
    return rows.length;
  });
}
