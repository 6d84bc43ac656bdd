import type { Queryable } from '../pool.js';
import { ruleError } from './approvals.js';

/** A two-person decision about the sites, recorded before any agent acts on it (migrations/0040). */
export type SiteOrderAction = 'site.unprotect' | 'site.protect' | 'site.failover';

export interface SiteOrderRecord {
  readonly id: string;
  readonly action: SiteOrderAction;
  readonly payload: Record<string, unknown>;
  /** The deciding people's names, and their credentials' public labels. */
  readonly people: readonly string[];
  readonly credentials: readonly string[];
  readonly createdAt: Date;
  /** Seconds since it was recorded, by this database's clock (the agent's freshness check). */
  readonly ageSeconds: number;
  readonly executedAt: Date | null;
  readonly outcome: Record<string, unknown> | null;
}

const COLUMNS = `id, action, payload, people, credentials, created_at, extract(epoch FROM now() - created_at)::float8 AS age_seconds, executed_at, outcome`;

function toRecord(r: Record<string, unknown>): SiteOrderRecord {
  return {
    id: r.id as string,
    action: r.action as SiteOrderAction,
    payload: r.payload as Record<string, unknown>,
    people: r.people as string[],
    credentials: r.credentials as string[],
    createdAt: r.created_at as Date,
    ageSeconds: r.age_seconds as number,
    executedAt: (r.executed_at as Date | null) ?? null,
    outcome: (r.outcome as Record<string, unknown> | null) ?? null,
  };
}

/**
 * Records the order through the rule function: it checks the proofs (two distinct administrators; one
 * for site.protect) and writes the audit row. Commits locally: an order to run without the synchronous
 * standby is given precisely when that standby is gone (the caller's transaction sets it).
 */
export async function recordSiteOrder(db: Queryable, order: { id: string; action: SiteOrderAction; payload: Record<string, unknown>; proofs: readonly [string] | readonly [string, string] }): Promise<SiteOrderRecord> {
  try {
    const { rows } = await db.query(`SELECT ${COLUMNS} FROM fp_site_order($1, $2, $3, $4, $5)`, [order.id, order.action, JSON.stringify(order.payload), order.proofs[0], order.proofs[1] ?? null]);
    return toRecord(rows[0]!);
  } catch (err) {
    throw ruleError(err);
  }
}

export async function readSiteOrder(db: Queryable, id: string): Promise<SiteOrderRecord | undefined> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM site_orders WHERE id = $1`, [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/**
 * The executing agent takes the order (owner's connection, on the primary): true only for the first
 * taker of an order not executed yet, so an order is acted on once. Commits locally, like the order.
 */
export async function claimSiteOrder(db: Queryable, id: string): Promise<boolean> {
  const { rows } = await db.query(`UPDATE site_orders SET executed_at = now() WHERE id = $1 AND executed_at IS NULL RETURNING id`, [id]);
  return rows.length === 1;
}

/** What became of it (done, failed or refused), for the record: the first outcome stays (a replay's refusal does not overwrite it). */
export async function recordSiteOrderOutcome(db: Queryable, id: string, outcome: Record<string, unknown>): Promise<void> {
  await db.query(`UPDATE site_orders SET executed_at = coalesce(executed_at, now()), outcome = $2 WHERE id = $1 AND outcome IS NULL`, [id, JSON.stringify(outcome)]);
}
