import type { Etcd3, Lease } from 'etcd3';
import { FleetError, type FleetConfig } from '@fleetpki/core';

/** Who holds the drill lock: shown to whoever is refused. */
export interface DrillHolder {
  readonly kind: string;
  readonly pid: number;
  readonly by: string;
  readonly since: string;
}

export interface DrillLock {
  readonly holder: DrillHolder;
  /** Fires if etcd stopped counting the lock (its lease ran out: this process was cut off or stalled). */
  onLost(handler: (err: Error) => void): void;
  release(): Promise<void>;
}

/**
 * Seconds the lock outlives a drill process that died without releasing it. Long enough that a drill
 * busy killing and promoting sites keeps it alive (keep-alives every third of it), short enough that a
 * killed drill does not block the next one for long.
 */
export const DRILL_LOCK_TTL_SECONDS = 30;

/**
 * One drill at a time on a pair of sites. Drills stop, kill and promote the shared sites, so two at once
 * would fight over them. The lock is the key `drill` under the pair's prefix, created only if absent
 * (an etcd transaction) and bound to a lease its holder keeps alive: it goes when the holder releases it
 * or dies. Not a PostgreSQL row or advisory lock: a failover drill kills the database it would live in,
 * while etcd (both sites and the witness) keeps its majority.
 */
export async function acquireDrillLock(client: Etcd3, config: FleetConfig, holder: Omit<DrillHolder, 'since'>): Promise<DrillLock> {
  const ns = client.namespace(config.consensus.prefix);
  const lease: Lease = ns.lease(DRILL_LOCK_TTL_SECONDS);
  const mine: DrillHolder = { ...holder, since: new Date().toISOString() };
  let result;
  try {
    result = await ns.if('drill', 'Create', '==', 0).then(lease.put('drill').value(JSON.stringify(mine))).else(ns.get('drill')).commit();
  } catch (err) {
    await lease.revoke().catch(() => undefined);
    throw new FleetError('DRILL_LOCK_UNAVAILABLE', `cannot take the drill lock in etcd: ${(err as Error).message}`, { httpStatus: 503 });
  }
  if (!result.succeeded) {
    await lease.revoke().catch(() => undefined);
    const value = result.responses[0]?.response_range?.kvs[0]?.value?.toString();
    const other = value ? (JSON.parse(value) as DrillHolder) : undefined;
    throw new FleetError('DRILL_RUNNING', other ? `a ${other.kind} drill runs already (process ${other.pid}, started by ${other.by} at ${other.since}); one drill at a time` : 'a drill runs already; one drill at a time', {
      httpStatus: 409,
      ...(other ? { details: { running: other } } : {}),
    });
  }
  return {
    holder: mine,
    onLost: (handler) => {
      lease.on('lost', handler);
    },
    release: async () => {
      await lease.revoke().catch(() => undefined);
    },
  };
}
