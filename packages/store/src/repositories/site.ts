import type { Queryable } from '../pool.js';

export interface SiteStateRecord {
  readonly site: 'a' | 'b';
  readonly role: 'active' | 'standby' | 'fenced';
  readonly epoch: number;
  readonly serialPrefix: number;
}

export async function readSiteStates(db: Queryable): Promise<SiteStateRecord[]> {
  const { rows } = await db.query<{ site: 'a' | 'b'; role: SiteStateRecord['role']; epoch: number; serial_prefix: number }>(`SELECT site, role, epoch, serial_prefix FROM site_state ORDER BY site`);
  return rows.map((r) => ({ site: r.site, role: r.role, epoch: r.epoch, serialPrefix: r.serial_prefix }));
}

export async function isInRecovery(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  return rows[0]!.r;
}
