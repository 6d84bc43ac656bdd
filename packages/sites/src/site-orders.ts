import { randomUUID } from 'node:crypto';
import { agentIdentity, answerSiteOrder, CaSiteReader, openConsensus, putSiteOrder, readSiteOrderEntry, readSiteOrders, type ConsensusClient, type SiteOrderAnswer, type SiteOrderEntry, type SiteOrderKind } from '@fleetpki/consensus';
import { FleetError, isFleetError, type FleetConfig, type SiteConfig, type SiteId } from '@fleetpki/core';
import { claimSiteOrder, isInRecovery, readSiteOrder, recordSiteOrder, recordSiteOrderOutcome, withTransaction, type Pool, type Queryable, type SiteOrderRecord } from '@fleetpki/store';
import { caDatabases, withOwnerPool } from './ca-databases.js';
import { failoverTo, protect, unprotect } from './failover.js';

type Log = (line: string) => void;


/** What a database name in an order may look like (PostgreSQL identifiers fleetpki creates). */
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/**
 * Two-person decisions about the sites, carried out by the agent that must act (issue 33 §2). The
 * administrators' checks once lived in the CLI's process only, and anyone who could write to etcd set the
 * keys directly. Now etcd lets only the agents write `unprotected` or revoke a candidacy's lease
 * (consensus/etcd-auth.ts), and an agent does so only on an order the database recorded:
 *
 *   1. the CLI calls fp_site_order with both administrators' proofs (migrations/0040): a row in
 *      site_orders, on the primary, and an audit row;
 *   2. it writes orders/<id> in etcd (its own credential may write only there, `drill` and `switchover`);
 *   3. the leader's agent (site.unprotect, site.protect) or the target's (site.failover) reads the row from
 *      its own site's database (a standby's replica receives it from the primary: it waits a moment for
 *      it) and acts only if the row exists, names the same action (and target), is younger than
 *      ORDER_MAX_AGE_SECONDS and was not executed yet; it answers in orders/<id>, {done} or {refused}.
 *
 * An order written to etcd without its row, or replayed, is refused and changes nothing.
 */
export const ORDER_MAX_AGE_SECONDS = 180;

/** How long a standby's agent waits for the order's row to replicate from the primary. */
const REPLICA_WAIT_MS = 5_000;

export interface SiteOrderResult {
  readonly id: string;
  readonly by: SiteId;
  readonly done: Record<string, unknown>;
}

/**
 * The CLI's side: records the order (the proofs are checked by the database), then asks the agents in
 * etcd and waits for the answer. `pool` is the CLI's (operator) pool on the primary's database.
 */
export async function placeSiteOrder(
  config: FleetConfig,
  pool: Pool,
  order: { action: SiteOrderKind; payload: Record<string, unknown>; proofs: readonly [string] | readonly [string, string]; to?: SiteId },
  options: { log?: Log; timeoutMs?: number } = {},
): Promise<SiteOrderResult> {
  const log = options.log ?? (() => undefined);
  const id = randomUUID();
  await withTransaction(pool, async (client) => {
    // Unprotecting is asked precisely when the synchronous standby is gone: the order must not wait for it.
    await client.query('SET LOCAL synchronous_commit = local');
    await recordSiteOrder(client, { id, action: order.action, payload: { ...order.payload, ...(order.to ? { to: order.to } : {}) }, proofs: order.proofs });
  });
  const database = (await pool.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
  const client = openConsensus(config, 'operator');
  try {
    await putSiteOrder(client, config, id, { action: order.action, database, ...(order.to ? { to: order.to } : {}), at: new Date().toISOString() });
    log(`order ${id} (${order.action}) recorded in the database and asked of the site agents in etcd`);
    const timeoutMs = options.timeoutMs ?? 180_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const entry = await readSiteOrderEntry(client, config, id).catch(() => undefined);
      const answer = entry?.answer;
      // One stable code for the caller; the agent's reason (its own stable code) in the message and details.
      if (answer?.refused) throw new FleetError('SITE_ORDER_REFUSED', `site ${answer.by}'s agent did not carry out order ${id}: ${answer.refused.code}: ${answer.refused.message}`, { details: { order: id, by: answer.by, reason: answer.refused.code } });
      if (answer?.done) return { id, by: answer.by, done: answer.done };
      if (Date.now() > deadline) throw new FleetError('SITE_ORDER_TIMEOUT', `no site agent answered order ${id} (${order.action}) within ${timeoutMs / 1000} s; see the agents' logs`, { details: { order: id } });
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}

/**
 * The agent's side: every `everyMs` it looks at orders/ and carries out those that are its to carry out.
 * Runs beside the agent's step loop, as the CLI's process used to (a failover waits for this site's
 * candidacy, which the step loop makes).
 */
export class SiteOrderDesk {
  private readonly client: ConsensusClient;
  private readonly reader: CaSiteReader;
  /** Orders this agent took (an answer is in etcd too, but a replaced key must not make it act twice). */
  private readonly handled = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly config: FleetConfig,
    private readonly site: SiteConfig,
    private readonly log: Log,
    private readonly everyMs = 500,
  ) {
    this.client = openConsensus(config, agentIdentity(site.id));
    this.reader = new CaSiteReader(this.client, config);
  }

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      try {
        await this.poll();
      } catch (err) {
        this.log(`site ${this.site.id}: orders: ${(err as Error).message}`);
      }
      if (!this.stopped) this.timer = setTimeout(loop, this.everyMs);
    };
    this.timer = setTimeout(loop, 0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.client.close();
  }

  /** One look at orders/: exported for tests that drive a desk by hand. */
  async poll(): Promise<void> {
    let pending: SiteOrderEntry[];
    let state;
    try {
      pending = (await readSiteOrders(this.client, this.config)).filter((e) => !e.answer);
      if (pending.length === 0) return;
      state = await this.reader.read();
    } catch {
      // Cut off from the majority: no order can be answered anyway (the step loop says nothing either).
      return;
    }
    for (const entry of pending) {
      const mine = entry.order.action === 'site.failover' ? entry.order.to === this.site.id : state.leader?.site === this.site.id;
      if (!mine) continue;
      // Put again after this agent answered it (a replay): answered from memory, since a standby's row
      // cannot say it was executed.
      // Answered without touching any database: nothing in this entry has been checked.
      if (this.handled.has(entry.id)) await this.refuse(entry, 'SITE_ORDER_EXECUTED', `this agent answered order ${entry.id} already`);
      else {
        this.handled.add(entry.id);
        // Whatever fails before the action (this site's database unreachable, say) is answered too:
        // the CLI waits for an answer, and a taken order is never taken again.
        await this.carryOut(entry).catch((err: Error) => this.answer(entry, { refused: { code: isFleetError(err) ? err.code : 'SITE_ORDER_FAILED', message: err.message } }));
      }
    }
  }

  private async answer(entry: SiteOrderEntry, answer: Omit<SiteOrderAnswer, 'by' | 'at'>): Promise<void> {
    await answerSiteOrder(this.client, this.config, entry, { by: this.site.id, at: new Date().toISOString(), ...answer }).catch((err: Error) => this.log(`site ${this.site.id}: cannot answer order ${entry.id} in etcd: ${err.message}`));
  }

  private async refuse(entry: SiteOrderEntry, code: string, message: string, database?: string): Promise<void> {
    this.log(`site ${this.site.id}: order ${entry.id} (${entry.order.action}) REFUSED: ${code}: ${message}`);
    // On the primary, the row (if any) says so too, and cannot be executed afterwards.
    if (database && code !== 'SITE_ORDER_UNKNOWN') await this.onPrimary(database, (db) => recordSiteOrderOutcome(db, entry.id, { refused: { code, message } })).catch(() => undefined);
    await this.answer(entry, { refused: { code, message } });
  }

  private async carryOut(entry: SiteOrderEntry): Promise<void> {
    const { order } = entry;
    // A plain identifier and one of this cluster's CA databases, before the name goes anywhere near a
    // connection (a name with '?host=...' would point the owner's connection elsewhere).
    if (!DATABASE_NAME.test(order.database) || !(await caDatabases(this.config, this.site)).includes(order.database)) {
      await this.refuse(entry, 'SITE_ORDER_UNKNOWN', `no CA database "${order.database}" on site ${this.site.id}`);
      return;
    }
    const row = await this.readRow(order.database, entry.id);
    const problem = checkRow(entry, row);
    if (problem) {
      await this.refuse(entry, problem.code, problem.message, row ? order.database : undefined);
      return;
    }
    const people = row!.people.map((p) => `person:${p}`).join(' + ');
    this.log(`site ${this.site.id}: carrying out order ${entry.id} (${order.action}) recorded by ${people}`);
    try {
      let done: Record<string, unknown>;
      if (order.action === 'site.failover') {
        const result = await failoverTo(this.config, this.site, { force: true, log: (l) => this.log(`site ${this.site.id}: order ${entry.id}: ${l}`) });
        done = { epoch: result.epoch, revokedLeaseOf: result.revokedLeaseOf ?? null };
      } else {
        // Taken on the primary before acting: a second delivery of the same order finds it executed.
        const claimed = await this.onPrimary(order.database, (db) => claimSiteOrder(db, entry.id));
        if (claimed === undefined) {
          await this.refuse(entry, 'SITE_NOT_PRIMARY', `site ${this.site.id} leads but its database is not the primary yet; ask again once it is active`);
          return;
        }
        if (!claimed) {
          await this.refuse(entry, 'SITE_ORDER_EXECUTED', `order ${entry.id} was executed already`);
          return;
        }
        const log = (l: string) => this.log(`site ${this.site.id}: order ${entry.id}: ${l}`);
        done = order.action === 'site.unprotect' ? { ...(await unprotect(this.config, `${people} (order ${entry.id})`, log)) } : { ...(await protect(this.config, log)) };
      }
      // A failover's row becomes writable here once this site is the primary.
      await this.onPrimary(order.database, (db) => recordSiteOrderOutcome(db, entry.id, { done })).catch(() => undefined);
      this.log(`site ${this.site.id}: order ${entry.id} (${order.action}) done`);
      await this.answer(entry, { done });
    } catch (err) {
      const code = isFleetError(err) ? err.code : 'SITE_ORDER_FAILED';
      this.log(`site ${this.site.id}: order ${entry.id} (${order.action}) failed: ${code}: ${(err as Error).message}`);
      await this.onPrimary(order.database, (db) => recordSiteOrderOutcome(db, entry.id, { failed: { code, message: (err as Error).message } })).catch(() => undefined);
      await this.answer(entry, { refused: { code, message: (err as Error).message } });
    }
  }

  /** The row from this site's database; on a standby, waits a moment for it to replicate. */
  private async readRow(database: string, id: string): Promise<SiteOrderRecord | undefined> {
    const deadline = Date.now() + REPLICA_WAIT_MS;
    for (;;) {
      const { row, standby } = await withOwnerPool(this.config, this.site, database, async (pool) => ({ row: await readSiteOrder(pool, id), standby: await isInRecovery(pool) }));
      if (row || !standby || Date.now() > deadline) return row;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Runs `fn` on this site's database if it is the primary (committing locally: the standby may be gone). */
  private async onPrimary<T>(database: string, fn: (db: Queryable) => Promise<T>): Promise<T | undefined> {
    return withOwnerPool(this.config, this.site, database, async (pool) => {
      if (await isInRecovery(pool)) return undefined;
      return withTransaction(pool, async (client) => {
        await client.query('SET LOCAL synchronous_commit = local');
        return fn(client);
      });
    });
  }
}

/** Why an order may not be carried out, if it may not. */
export function checkRow(entry: SiteOrderEntry, row: SiteOrderRecord | undefined): { code: string; message: string } | undefined {
  if (!row) return { code: 'SITE_ORDER_NOT_RECORDED', message: `no order ${entry.id} recorded in the database (two administrators record it with the CLI first)` };
  if (row.action !== entry.order.action) return { code: 'SITE_ORDER_MISMATCH', message: `order ${entry.id} was recorded as ${row.action}, not ${entry.order.action}` };
  if (entry.order.action === 'site.failover' && row.payload.to !== entry.order.to) return { code: 'SITE_ORDER_MISMATCH', message: `order ${entry.id} was recorded for site ${String(row.payload.to)}, not ${String(entry.order.to)}` };
  if (row.executedAt) return { code: 'SITE_ORDER_EXECUTED', message: `order ${entry.id} was executed (or refused) at ${row.executedAt.toISOString()}` };
  if (row.ageSeconds > ORDER_MAX_AGE_SECONDS) return { code: 'SITE_ORDER_STALE', message: `order ${entry.id} was recorded ${Math.round(row.ageSeconds)} s ago; orders are carried out within ${ORDER_MAX_AGE_SECONDS} s` };
  return undefined;
}
