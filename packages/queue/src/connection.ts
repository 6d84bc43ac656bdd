import { Redis, type RedisOptions } from 'ioredis';
import { FleetError } from '@fleetpki/core';
import { asRedisLink, redisAddress, type RedisLink } from './redis-link.js';
import { redisLinkError } from './redis-errors.js';

export type RedisConnection = Redis;

/** ioredis options of a link: the ACL user and its password, and TLS with the configured CA only. */
function linkOptions(link: RedisLink): RedisOptions {
  return {
    ...(link.username !== undefined ? { username: link.username } : {}),
    ...(link.password !== undefined ? { password: link.password } : {}),
    // Only the configured CA is trusted (not the system's), so a server certificate from elsewhere is refused.
    ...(link.tls ? { tls: { ca: link.tls.ca, ...(link.tls.servername ? { servername: link.tls.servername } : {}) } } : {}),
  };
}

/** A connection suitable for BullMQ workers (maxRetriesPerRequest: null, as BullMQ requires). */
export function createRedisConnection(target: string | RedisLink, options: { lazyConnect?: boolean } = {}): RedisConnection {
  const link = asRedisLink(target);
  const redis = new Redis(link.url, { ...linkOptions(link), maxRetriesPerRequest: null, lazyConnect: options.lazyConnect ?? false, enableReadyCheck: true });
  // Losing Redis is survivable (PostgreSQL holds the truth); log-and-reconnect is ioredis's default.
  redis.on('error', () => undefined);
  return redis;
}

export interface RedisHealth {
  readonly up: boolean;
  readonly version?: string;
  readonly error?: string;
  /** Why the link failed, when it was not mere absence: REDIS_AUTH_FAILED, REDIS_TLS_UNTRUSTED, REDIS_TLS_REQUIRED. */
  readonly failure?: FleetError;
}

/** One PING and INFO with a short timeout and no retries, for status pages and tests. */
export async function probeRedis(target: string | RedisLink, timeoutMs = 1_000): Promise<RedisHealth> {
  const link = asRedisLink(target);
  const redis = new Redis(link.url, { ...linkOptions(link), lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, enableReadyCheck: false });
  // The first error of the socket (a TLS refusal) says more than the "Connection is closed" that follows it.
  let first: Error | undefined;
  redis.on('error', (err: Error) => {
    first ??= err;
  });
  try {
    await redis.connect();
    const pong = await redis.ping();
    if (pong !== 'PONG') return { up: false, error: `unexpected reply ${pong}` };
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    return version ? { up: true, version } : { up: true };
  } catch (err) {
    const cause = first ?? (err as Error);
    const failure = redisLinkError(link, cause, err as Error);
    return { up: false, error: failure?.message ?? cause.message, ...(failure ? { failure } : {}) };
  } finally {
    redis.disconnect();
  }
}

/**
 * At a service's start: a wrong password, an untrusted server certificate or a plaintext client facing
 * a TLS port stops the service with that error. Redis merely down does not (PostgreSQL holds the truth;
 * the queue reconnects and the daemons re-queue what was lost).
 */
export async function assertRedisLink(target: string | RedisLink, timeoutMs = 2_000): Promise<void> {
  const health = await probeRedis(target, timeoutMs);
  if (health.failure) throw health.failure;
}

export function redisUnavailable(target: string | RedisLink, err: unknown): FleetError {
  return new FleetError('QUEUE_UNAVAILABLE', `cannot reach Redis at ${redisAddress(asRedisLink(target))}: ${(err as Error).message}`, { httpStatus: 503, cause: err });
}
