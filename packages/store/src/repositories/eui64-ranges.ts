import type { Queryable } from '../pool.js';

/** A block of device ids registered to a manufacturer (migrations/0036_eui64_ranges.sql). */
export interface ManufacturerRange {
  readonly manufacturerId: string;
  readonly first: Buffer;
  readonly last: Buffer;
  readonly createdBy: string;
  readonly createdAt: Date;
}

interface RangeRow {
  manufacturer_id: string;
  first_eui64: Buffer;
  last_eui64: Buffer;
  created_by: string;
  created_at: Date;
}

const toRange = (r: RangeRow): ManufacturerRange => ({ manufacturerId: r.manufacturer_id, first: r.first_eui64, last: r.last_eui64, createdBy: r.created_by, createdAt: r.created_at });

export async function listManufacturerRanges(db: Queryable, manufacturerId?: string): Promise<ManufacturerRange[]> {
  const { rows } = await db.query<RangeRow>(
    'SELECT manufacturer_id, first_eui64, last_eui64, created_by, created_at FROM manufacturer_eui64_ranges WHERE $1::text IS NULL OR manufacturer_id = $1 ORDER BY first_eui64',
    [manufacturerId ?? null],
  );
  return rows.map(toRange);
}

/** Registered ranges that share at least one id with first..last, whoever holds them. */
export async function findOverlappingRanges(db: Queryable, first: Buffer, last: Buffer): Promise<ManufacturerRange[]> {
  const { rows } = await db.query<RangeRow>('SELECT manufacturer_id, first_eui64, last_eui64, created_by, created_at FROM manufacturer_eui64_ranges WHERE first_eui64 <= $2 AND last_eui64 >= $1 ORDER BY first_eui64', [first, last]);
  return rows.map(toRange);
}

/** A device inside first..last that is registered to a manufacturer other than `manufacturerId`, if any. */
export async function findForeignDeviceInRange(db: Queryable, manufacturerId: string, first: Buffer, last: Buffer): Promise<{ eui64: Buffer; manufacturerId: string } | undefined> {
  const { rows } = await db.query<{ eui64: Buffer; manufacturer_id: string }>('SELECT eui64, manufacturer_id FROM devices WHERE eui64 BETWEEN $2 AND $3 AND manufacturer_id <> $1 ORDER BY eui64 LIMIT 1', [manufacturerId, first, last]);
  const r = rows[0];
  return r && { eui64: r.eui64, manufacturerId: r.manufacturer_id };
}

/** Inserts a range; the exclusion constraint refuses an overlap that slipped past a check (a concurrent registration). */
export async function insertManufacturerRange(db: Queryable, range: { manufacturerId: string; first: Buffer; last: Buffer; createdBy: string }): Promise<void> {
  await db.query('INSERT INTO manufacturer_eui64_ranges (manufacturer_id, first_eui64, last_eui64, created_by) VALUES ($1, $2, $3, $4)', [range.manufacturerId, range.first, range.last, range.createdBy]);
}

/** Why `manufacturerId` may not have a device: outside its ranges (none registered at all), or registered to another manufacturer. */
export type DeviceRefusal = 'outside-range' | 'no-ranges' | 'foreign-device';

/**
 * The first of `eui64s` that is not `manufacturerId`'s to enrol or to get keys for, and why: outside its
 * ranges, or registered to another manufacturer (possible only for devices enrolled before ranges).
 */
export async function findDeviceNotOwned(db: Queryable, manufacturerId: string, eui64s: readonly Buffer[]): Promise<{ eui64: Buffer; refusal: DeviceRefusal } | undefined> {
  if (eui64s.length === 0) return undefined;
  const { rows } = await db.query<{ eui64: Buffer; inside: boolean; has_ranges: boolean }>(
    `SELECT e AS eui64, fp_eui64_in_ranges($1, e) AS inside, EXISTS (SELECT 1 FROM manufacturer_eui64_ranges WHERE manufacturer_id = $1) AS has_ranges
       FROM unnest($2::bytea[]) WITH ORDINALITY AS t(e, n)
      WHERE NOT fp_eui64_in_ranges($1, e) OR EXISTS (SELECT 1 FROM devices d WHERE d.eui64 = e AND d.manufacturer_id <> $1)
      ORDER BY n LIMIT 1`,
    [manufacturerId, eui64s],
  );
  const r = rows[0];
  return r && { eui64: r.eui64, refusal: r.inside ? 'foreign-device' : r.has_ranges ? 'outside-range' : 'no-ranges' };
}
