import type { Queryable } from '../pool.js';

export interface KekRecord {
  readonly id: string;
  readonly custodians: number;
  readonly threshold: number;
  readonly kekCheck: Buffer;
  readonly createdAt: Date;
}

/** keyObjectId: the key's CKA_ID (null for backups made before ids were recorded). */
export type KeyBackupRecord =
  | { readonly kekId: string; readonly keyLabel: string; readonly keyObjectId: Buffer | null; readonly keyClass: 'private'; readonly mechanism: 'aes-key-wrap-pad'; readonly wrapped: Buffer; readonly publicKeySpki: Buffer }
  | { readonly kekId: string; readonly keyLabel: string; readonly keyObjectId: Buffer | null; readonly keyClass: 'secret'; readonly mechanism: 'aes-key-wrap'; readonly wrapped: Buffer; readonly checkValue: Buffer };

export async function insertKek(db: Queryable, kek: Omit<KekRecord, 'createdAt'>): Promise<void> {
  await db.query('INSERT INTO key_encryption_keys (id, custodians, threshold, kek_check) VALUES ($1, $2, $3, $4)', [kek.id, kek.custodians, kek.threshold, kek.kekCheck]);
}

export async function getKek(db: Queryable, id: string): Promise<KekRecord | undefined> {
  const { rows } = await db.query<{ id: string; custodians: number; threshold: number; kek_check: Buffer; created_at: Date }>('SELECT * FROM key_encryption_keys WHERE id = $1', [id]);
  const r = rows[0];
  return r && { id: r.id, custodians: r.custodians, threshold: r.threshold, kekCheck: r.kek_check, createdAt: r.created_at };
}

export async function insertKeyBackup(db: Queryable, backup: KeyBackupRecord): Promise<void> {
  await db.query('INSERT INTO key_backups (kek_id, key_label, key_object_id, key_class, mechanism, wrapped, public_key_spki, check_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [
    backup.kekId,
    backup.keyLabel,
    backup.keyObjectId,
    backup.keyClass,
    backup.mechanism,
    backup.wrapped,
    backup.keyClass === 'private' ? backup.publicKeySpki : null,
    backup.keyClass === 'secret' ? backup.checkValue : null,
  ]);
}

export async function listKeyBackups(db: Queryable, kekId: string): Promise<KeyBackupRecord[]> {
  const { rows } = await db.query<{ kek_id: string; key_label: string; key_object_id: Buffer | null; key_class: 'private' | 'secret'; wrapped: Buffer; public_key_spki: Buffer | null; check_value: Buffer | null }>(
    'SELECT kek_id, key_label, key_object_id, key_class, wrapped, public_key_spki, check_value FROM key_backups WHERE kek_id = $1 ORDER BY key_class, key_label',
    [kekId],
  );
  return rows.map((r): KeyBackupRecord =>
    r.key_class === 'private'
      ? { kekId: r.kek_id, keyLabel: r.key_label, keyObjectId: r.key_object_id, keyClass: 'private', mechanism: 'aes-key-wrap-pad', wrapped: r.wrapped, publicKeySpki: r.public_key_spki! }
      : { kekId: r.kek_id, keyLabel: r.key_label, keyObjectId: r.key_object_id, keyClass: 'secret', mechanism: 'aes-key-wrap', wrapped: r.wrapped, checkValue: r.check_value! },
  );
}
