import pg from 'pg';
import { FleetError } from '@fleetpki/core';
import { pgConnectionConfig, type PgLinkSecurity } from './pg-link.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

export interface PoolOptions {
  /** Name shown in pg_stat_activity, so an operator can tell which process holds which connection. */
  applicationName?: string;
  max?: number;
  connectionTimeoutMillis?: number;
  /**
   * PostgreSQL ends a session left idle inside a transaction this long (idle_in_transaction_session_timeout):
   * a backstop for pools whose transactions wait on a client (uploads), should the process's own deadline fail.
   */
  idleInTransactionTimeoutMs?: number;
  /** TLS and the role's password (pgLinkSecurity); undefined: the loopback simulation's plain link. */
  security?: PgLinkSecurity | undefined;
  /** Bounds on how long a statement may wait or run (background jobs: see SessionWaits). */
  waits?: SessionWaits;
}

/**
 * How long a session's statements may wait for a lock and run (lock_timeout, statement_timeout), and how
 * often a running statement checks that its client is still there (client_connection_check_interval):
 * without it, a backend waiting in a lock queue for a client that died goes on waiting, then runs its
 * statement and commits for nobody.
 */
export interface SessionWaits {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly clientCheckIntervalMs: number;
}

// BYTEA comes back as Buffer already; BIGINT (OID 20) and NUMERIC stay strings unless parsed. Counts and
// sequence numbers here fit in 2^53, so parse BIGINT as a number once, here, rather than at every caller.
pg.types.setTypeParser(20, (value: string) => Number(value));

/**
 * Whether a value is a pool made by createPool (pg.Pool), not a port or a single client: ca's capabilities
 * still take either a pool or their port from callers not moved to ports yet, and tell them apart here,
 * once (a client has connect, query and end too, so a duck test cannot).
 */
export function isPool(value: unknown): value is Pool {
  return value instanceof pg.Pool;
}

export function createPool(databaseUrl: string, options: PoolOptions = {}): Pool {
  const pool = new pg.Pool({
    ...pgConnectionConfig(databaseUrl, options.security),
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
    application_name: options.applicationName ?? 'fleetpki',
    ...(options.idleInTransactionTimeoutMs !== undefined ? { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs } : {}),
    ...(options.waits ? { lock_timeout: options.waits.lockTimeoutMs, statement_timeout: options.waits.statementTimeoutMs, options: `-c client_connection_check_interval=${options.waits.clientCheckIntervalMs}` } : {}),
  });
  // A client losing its server (site failover, `sites down`, a killed PostgreSQL) must not crash the
  // process: idle in the pool (pool 'error'), or checked out between two queries of a transaction that
  // awaits something else, such as the HSM (the client's own 'error', which nobody else listens to).
  // Its next query fails, and the pool discards it when it is released with that error.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Runs fn inside BEGIN/COMMIT on one connection; any throw rolls back. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Turns a connection failure into a FleetError naming where we tried to connect (never the password). */
export function describeConnectionError(databaseUrl: string, err: unknown): FleetError {
  const url = new URL(databaseUrl);
  url.password = '';
  return new FleetError('STORE_UNAVAILABLE', `cannot reach PostgreSQL at ${url.host}${url.pathname}: ${(err as Error).message}`, { httpStatus: 503, cause: err });
}

/** PostgreSQL SQLSTATE 23505: a unique constraint refused the row (callers decide what that means). */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

/** PostgreSQL SQLSTATE 23P01: an exclusion constraint refused the row (e.g. two overlapping EUI-64 ranges). */
export function isExclusionViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23P01';
}
