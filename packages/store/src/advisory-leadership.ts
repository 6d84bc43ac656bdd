import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Pool } from './pool.js';

// The first key of every daemon lock ('FPKI'), so fleetpki's advisory locks never meet another program's.
const LOCK_CLASS = 0x46504b49;

/** A job name's second key: 31 bits of its SHA-256, stable across processes and releases. */
export function jobLockKey(job: string): number {
  return createHash('sha256').update(`fleetpki-daemon:${job}`).digest().readUInt32BE(0) & 0x7fffffff;
}

/**
 * Which instance of a site's daemons leads each job: a PostgreSQL session-level advisory lock per job,
 * held on one connection of this process's own for as long as it lives. Two processes of one site
 * (a second host, a restart overlapping the old one) then run each job's passes in one of them only;
 * when the leader's process dies its session ends, the lock goes with it, and another instance takes
 * the job at its next check. A lost connection loses every lock held on it: nothing is assumed held
 * until a new connection has taken it again.
 *
 * PostgreSQL's advisory locks rather than etcd's leases: the jobs write to that database, the site's
 * role in it is what already decides whether they may run, and a lock that lives exactly as long as
 * the session needs no renewal loop.
 */
export class AdvisoryLeadership {
  private client: pg.PoolClient | undefined;
  private readonly held = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();

  /** `pool`: a pool of its own with one connection (the connection is kept checked out). */
  constructor(private readonly pool: Pool) {}

  /** Whether this process leads `job` now: it held the lock, or took it just now. */
  holds(job: string): Promise<boolean> {
    // One query at a time on the connection (several daemons ask at once).
    const next = this.chain.then(() => this.check(job));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async check(job: string): Promise<boolean> {
    try {
      this.client ??= await this.pool.connect();
      if (this.held.has(job)) {
        // Still the same session, so still the lock: a query that fails means the session is gone.
        await this.client.query('SELECT 1');
        return true;
      }
      const { rows } = await this.client.query<{ taken: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS taken', [LOCK_CLASS, jobLockKey(job)]);
      if (rows[0]?.taken) this.held.add(job);
      return rows[0]?.taken === true;
    } catch (err) {
      this.dropConnection(err);
      throw err;
    }
  }

  private dropConnection(err: unknown): void {
    this.held.clear();
    this.client?.release(err instanceof Error ? err : true);
    this.client = undefined;
  }

  /** Lets every lock go (the session ends) and closes the pool. */
  async close(): Promise<void> {
    await this.chain;
    this.held.clear();
    this.client?.release(true);
    this.client = undefined;
    await this.pool.end();
  }
}
