import type { Queryable } from '../pool.js';

export type DeviceKeyRoleName = 'mac' | 'enc';

export interface MasterKeyRecord {
  readonly role: DeviceKeyRoleName;
  readonly version: number;
  readonly keyLabel: string;
  /** CKA_ID of the key in the HSM (null for keys recorded before ids were). */
  readonly keyObjectId: Buffer | null;
  readonly status: 'active' | 'retired';
}

/** Records a new master key version as the active one for its role; earlier versions are retired (kept for existing devices). */
export async function insertMasterKey(db: Queryable, role: DeviceKeyRoleName, version: number, keyLabel: string, keyObjectId: Buffer): Promise<void> {
  await db.query(`UPDATE device_master_keys SET status = 'retired' WHERE role = $1 AND status = 'active'`, [role]);
  await db.query('INSERT INTO device_master_keys (role, version, key_label, key_object_id) VALUES ($1, $2, $3, $4)', [role, version, keyLabel, keyObjectId]);
}

export async function listMasterKeys(db: Queryable): Promise<MasterKeyRecord[]> {
  const { rows } = await db.query<{ role: DeviceKeyRoleName; version: number; key_label: string; key_object_id: Buffer | null; status: 'active' | 'retired' }>('SELECT role, version, key_label, key_object_id, status FROM device_master_keys ORDER BY role, version');
  return rows.map((r) => ({ role: r.role, version: r.version, keyLabel: r.key_label, keyObjectId: r.key_object_id, status: r.status }));
}

export async function setManufacturerTransportKey(db: Queryable, manufacturerId: string, spki: Buffer): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE manufacturers SET transport_key_spki = $2 WHERE id = $1', [manufacturerId, spki]);
  return rowCount === 1;
}

export async function getManufacturerTransportKey(db: Queryable, manufacturerId: string): Promise<Buffer | null | undefined> {
  const { rows } = await db.query<{ k: Buffer | null }>('SELECT transport_key_spki AS k FROM manufacturers WHERE id = $1', [manufacturerId]);
  return rows.length === 0 ? undefined : rows[0]!.k;
}

/** Stores the check values of issued device keys; a device key issued again (same version) keeps its first row. */
export async function saveDeviceKeyChecks(db: Queryable, bundle: string, checks: readonly { eui64: Buffer; role: DeviceKeyRoleName; version: number; kcv: Buffer }[]): Promise<void> {
  if (checks.length === 0) return;
  await db.query(
    `INSERT INTO device_key_checks (eui64, role, version, kcv, bundle)
     SELECT e, r, v, k, $5 FROM unnest($1::bytea[], $2::text[], $3::int[], $4::bytea[]) AS t(e, r, v, k)
     ON CONFLICT DO NOTHING`,
    [checks.map((c) => c.eui64), checks.map((c) => c.role), checks.map((c) => c.version), checks.map((c) => c.kcv), bundle],
  );
}

export async function getDeviceKeyCheck(db: Queryable, eui64: Buffer, role: DeviceKeyRoleName, version: number): Promise<Buffer | undefined> {
  const { rows } = await db.query<{ kcv: Buffer }>('SELECT kcv FROM device_key_checks WHERE eui64 = $1 AND role = $2 AND version = $3', [eui64, role, version]);
  return rows[0]?.kcv;
}
