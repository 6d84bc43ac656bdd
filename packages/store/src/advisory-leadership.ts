import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Pool } from './pool.js';

// The first key of every daemon lock ('FPKI'), so fleetpki's advisory locks never meet another program's.
export const JOB_LOCK_CLASS = 0x46504b49;

/** A job name's second key: 31 bits of its SHA-256, stable across processes and releases. */
export function jobLockKey(job: string): number {
  return createHash('sha256').update(`fleetpki-daemon:${job}`).digest().readUInt32BE(0) & 0x7fffffff;
}

// Every query on the leadership connection gives up after this: a leader whose link hangs must not
// hang its jobs' checks (each waits for the one before) nor its shutdown.
const QUERY_TIMEOUT_MS = 5_000;
// The server drops the session of a host that vanished (power, partition) within ~10 s, and its locks
// with it, instead of after the kernel's default two hours of keepalive silence. Per session: any role
// may set these.
const SESSION_KEEPALIVES = ['SET tcp_keepalives_idle = 5', 'SET tcp_keepalives_interval = 2', 'SET tcp_keepalives_count = 3', 'SET tcp_user_timeout = 10000'];

/**
 * Which instance of a site's daemons leads each job: a PostgreSQL session-level advisory lock per job,
 * held on one connection of this process's own. Two processes of one site (a second host, a restart
 * overlapping the old one) then run each job's passes in one of them only. A leader that may not act
 * (its site lease lost, say) releases the job, so another instance that may act takes it; when the
 * leader's process dies, or its host vanishes, its session ends, the locks go with it, and another
 * instance takes the jobs at its next check. A lost connection loses every lock held on it: nothing is
 * assumed held until a new connection has taken it again.
 *
 * The lock saves duplicate work; it is not a fence. A pass that outlives its lease is still kept correct
 * by the database's own locks (the CRL snapshot, the revocation lock), as before there was a leader.
 *
 * PostgreSQL's advisory locks rather than etcd's leases: the jobs write to that database, the site's
 * role in it is what already decides whether they may run, and a lock that lives exactly as long as
 * the session needs no renewal loop. It needs a direct connection: a transaction-mode pooler between
 * the daemons and PostgreSQL would hand the session, and its locks, to someone else.
 */
export class AdvisoryLeadership {
  private client: pg.PoolClient | undefined;
  private readonly held = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();

  /** `pool`: a pool of its own with one connection (the connection is kept checked out). */
  constructor(private readonly pool: Pool) {}

  /** Whether this process leads `job` now: it held the lock, or took it just now. */
  holds(job: string): Promise<boolean> {
    return this.serially(() => this.check(job));
  }

  /** Gives `job` up, if held (this instance may not act now): another instance can take it at once. */
  release(job: string): Promise<void> {
    if (!this.held.has(job)) return Promise.resolve();
    return this.serially(async () => {
      if (!this.held.has(job) || !this.client) return;
      this.held.delete(job);
      try {
        await this.query('SELECT pg_advisory_unlock($1::int, $2::int)', [JOB_LOCK_CLASS, jobLockKey(job)]);
      } catch (err) {
        this.dropConnection(err); // the session goes, and the lock with it
      }
    });
  }

  /** One query at a time on the connection (several daemons ask at once). */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.client!.query<R>({ text, values, query_timeout: QUERY_TIMEOUT_MS } as pg.QueryConfig);
  }

  private async check(job: string): Promise<boolean> {
    try {
      if (!this.client) {
        this.client = await this.pool.connect();
        for (const set of SESSION_KEEPALIVES) await this.query(set);
      }
      if (this.held.has(job)) {
        // Still the same session, so still the lock: a query that fails means the session is gone.
        await this.query('SELECT 1');
        return true;
      }
      const { rows } = await this.query<{ taken: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS taken', [JOB_LOCK_CLASS, jobLockKey(job)]);
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

  /** Lets every lock go and closes the pool. */
  async close(): Promise<void> {
    await this.chain;
    if (this.client) {
      // Unlocked before the connection goes: ending a pool does not wait for its sessions to end.
      await this.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      this.client.release(true);
      this.client = undefined;
    }
    this.held.clear();
    await this.pool.end();
  }
}
