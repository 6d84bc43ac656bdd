import { FleetError, type FleetConfig } from '@fleetpki/core';
import type { Pool } from '@fleetpki/store';
import { siteStoreOf } from './postgres-store.js';
import type { SiteLease } from './site-lease.js';
import type { CaStatusStore, SiteGuardStore } from './store.js';

/**
 * Writes go to the active site only, and only while it holds its lease. A site whose database is a hot
 * standby answers writes with 503 and names the other site, until a failover promotes it; a site that
 * lost its lease (cut off from its standby, or fenced by a higher epoch) answers 503 SITE_NOT_LEASED
 * and says why. The database role is checked at most once a second; the lease on every call. Every
 * "at most once a second" here is measured on the monotonic clock (performance.now()), so a wall clock
 * set back cannot keep an old answer alive.
 */
export class SiteGuard {
  private standby: boolean | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private standbyCheck: Promise<boolean> | undefined;
  private blocked: { since: Date } | undefined;
  private blockCheckedAt = Number.NEGATIVE_INFINITY;
  private blockCheck: Promise<{ since: Date } | undefined> | undefined;
  /** Told when writes become blocked or flow again (the service logs it at error and sets a metric). */
  onWritesBlocked: (blocked: { since: Date } | undefined) => void = () => undefined;
  private readonly store: SiteGuardStore;

  /** `source`: the port, or (transitional, for callers not moved yet) a pool it is built on. */
  constructor(
    source: SiteGuardStore | Pool,
    private readonly config: FleetConfig,
    readonly lease?: SiteLease,
  ) {
    this.store = siteStoreOf(source);
  }

  /**
   * Are writes blocked here: a primary whose commits wait for a synchronous standby and none is streaming,
   * or the one streaming has not answered for longer than a write may wait?
   * Asked of the database at most twice a second (fresh: now), which answers without waiting itself.
   */
  async writesBlocked(fresh = false): Promise<{ since: Date } | undefined> {
    if (!fresh && performance.now() - this.blockCheckedAt < 500) return this.blocked;
    this.blockCheck ??= (async () => {
      try {
        const state = await this.store.syncStandbyState();
        // Silent for longer than a write may wait: frozen or cut off, even if its walsender still streams.
        const silent = state.replyAgeMs !== null && state.replyAgeMs > this.config.writeWaitMs;
        const blocked = state.required && (!state.connected || silent);
        const before = this.blocked;
        this.blocked = blocked ? (this.blocked ?? { since: new Date() }) : undefined;
        if ((before === undefined) !== (this.blocked === undefined)) this.onWritesBlocked(this.blocked);
      } finally {
        this.blockCheckedAt = performance.now();
        this.blockCheck = undefined;
      }
      return this.blocked;
    })();
    return this.blockCheck;
  }

  /** The refusal for a write that cannot commit now, with when to try again. */
  standbyUnavailable(since: Date): FleetError {
    const other = this.config.sites[this.config.site === 'a' ? 'b' : 'a'];
    return new FleetError('STANDBY_UNAVAILABLE', `writes blocked: the synchronous standby (site ${other.id}) has been unreachable since ${since.toISOString()}; nothing is committed without it (RPO 0). Try again later; operators: bring site ${other.id} back, or decide to run unprotected (\`fleetpki sites unprotect\`, two people)`, {
      httpStatus: 503,
      details: { since: since.toISOString(), retryAfterSeconds: Math.max(1, Math.ceil(this.config.writeWaitMs / 1000)) },
    });
  }

  /** May this process issue and sign for the CA now (not a standby, lease held)? */
  async canAct(): Promise<boolean> {
    return !(await this.isStandby()) && (this.lease?.state().issuing ?? true);
  }

  async isStandby(): Promise<boolean> {
    if (this.standby !== undefined && performance.now() - this.checkedAt <= 1_000) return this.standby;
    // One query however many requests ask at once: every route asks, and the pool is the reserved one.
    this.standbyCheck ??= (async () => {
      try {
        this.standby = await this.store.isInRecovery();
        this.checkedAt = performance.now();
        return this.standby;
      } finally {
        this.standbyCheck = undefined;
      }
    })();
    return this.standbyCheck;
  }

  async assertWritable(): Promise<void> {
    if (await this.isStandby()) {
      const other = this.config.sites[this.config.site === 'a' ? 'b' : 'a'];
      throw new FleetError('SITE_STANDBY', `site ${this.config.site} is a standby and accepts no writes; the active site is ${other.id} (${other.apiUrl})`, {
        httpStatus: 503,
        // Retry-After: a switchover or failover makes this site active within seconds; a client that
        // cannot switch sites waits for that.
        details: { activeSite: other.id, activeUrl: other.apiUrl, retryAfterSeconds: 10 },
      });
    }
    const lease = this.lease?.state();
    if (lease && !lease.issuing) throw new FleetError('SITE_NOT_LEASED', `site ${this.config.site} does not hold the CA's lease and issues nothing: ${lease.reason}`, { httpStatus: 503, details: { lease, retryAfterSeconds: 5 } });
    const blocked = await this.writesBlocked();
    if (blocked) throw this.standbyUnavailable(blocked.since);
  }
}

/**
 * Issuance stops within a second of a CA's revocation (dual control, ca.revoke): the signing paths ask
 * this before they sign, and it reads the CA's status at most once a second.
 */
export class CaStatusGuard {
  private statuses = new Map<string, string>();
  private checkedAt = Number.NEGATIVE_INFINITY;
  private readonly store: CaStatusStore;

  /** `source`: the port, or (transitional) a pool it is built on. */
  constructor(source: CaStatusStore | Pool) {
    this.store = siteStoreOf(source);
  }

  async assertActive(caId: string): Promise<void> {
    if (performance.now() - this.checkedAt > 1_000) {
      this.statuses = new Map((await this.store.listCas()).map((c) => [c.id, c.status]));
      this.checkedAt = performance.now();
    }
    const status = this.statuses.get(caId);
    if (status !== 'active') throw new FleetError('CA_NOT_ACTIVE', `CA ${caId} is ${status ?? 'unknown'}; it issues no more certificates`, { httpStatus: 409 });
  }
}
