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

/**
 * Run on the newly promoted primary: `site` becomes active and the other fenced, with an epoch above any
 * seen, so a writer still holding the old epoch is refused (SiteGuard, chunk completion).
 */
export async function activateSite(db: Queryable, site: 'a' | 'b', note: string): Promise<number> {
  const { rows } = await db.query<{ epoch: string }>(
    `UPDATE site_state SET role = CASE WHEN site = $1 THEN 'active' ELSE 'fenced' END,
            epoch = (SELECT max(epoch) + 1 FROM site_state), changed_at = now(), note = $2
      RETURNING epoch::text`,
    [site, note],
  );
  return Number(rows[0]!.epoch);
}

/** Marks a rebuilt site as the standby again (it was fenced since the failover). */
export async function markSiteStandby(db: Queryable, site: 'a' | 'b', note: string): Promise<void> {
  await db.query(`UPDATE site_state SET role = 'standby', changed_at = now(), note = $2 WHERE site = $1`, [site, note]);
}

/** Can the primary commit now? False when it must wait for a synchronous standby and none is streaming. */
/** Whether commits wait for a synchronous standby, whether one streams, and since when it has been silent (ms). */
export async function syncStandbyState(db: Queryable): Promise<{ required: boolean; connected: boolean; replyAgeMs: number | null }> {
  const { rows } = await db.query<{ required: string; connected: boolean; reply_age_ms: number | null }>('SELECT required, connected, reply_age_ms FROM fp_sync_standby()');
  return { required: rows[0]!.required.trim() !== '', connected: rows[0]!.connected, replyAgeMs: rows[0]!.reply_age_ms };
}
