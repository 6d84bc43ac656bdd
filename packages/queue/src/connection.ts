import { Redis } from 'ioredis';
import { FleetError } from '@fleetpki/core';

export type RedisConnection = Redis;

/** A connection suitable for BullMQ workers (maxRetriesPerRequest: null, as BullMQ requires). */
export function createRedisConnection(redisUrl: string, options: { lazyConnect?: boolean } = {}): RedisConnection {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: options.lazyConnect ?? false, enableReadyCheck: true });
  // Losing Redis is survivable (PostgreSQL holds the truth); log-and-reconnect is ioredis's default.
  redis.on('error', () => undefined);
  return redis;
}

export interface RedisHealth {
  readonly up: boolean;
  readonly version?: string;
  readonly error?: string;
}

/** One PING and INFO with a short timeout and no retries, for status pages and tests. */
export async function probeRedis(redisUrl: string, timeoutMs = 1_000): Promise<RedisHealth> {
  const redis = new Redis(redisUrl, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const pong = await redis.ping();
    if (pong !== 'PONG') return { up: false, error: `unexpected reply ${pong}` };
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    return version ? { up: true, version } : { up: true };
  } catch (err) {
    return { up: false, error: (err as Error).message };
  } finally {
    redis.disconnect();
  }
}

export function redisUnavailable(redisUrl: string, err: unknown): FleetError {
  return new FleetError('QUEUE_UNAVAILABLE', `cannot reach Redis at ${new URL(redisUrl).host}: ${(err as Error).message}`, { httpStatus: 503, cause: err });
}
