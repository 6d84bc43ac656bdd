import type { SiteId } from '@fleetpki/core';
import type { EnrolmentStore } from './store.js';

/** The store calls the release of stale intents makes, and nothing more. */
export type StaleIntentStore = Pick<EnrolmentStore, 'staleOnlineIntents' | 'retireIntent'>;

/**
 * The online-intent reconciler's memory: online intents that never got their certificate (a crash
 * between the intent and the store, an HSM error, a commit whose outcome was lost) are released after
 * the intent timeout, with an audit row, so their devices can enrol again. It needs no CA key: the
 * daemons run it with the issuer role's pool alone (onlineIntentReconciler).
 *
 * A pass looks only at intents created since the previous pass's window ended (the first pass: the
 * last hour), so its cost follows the enrolment rate, not the size of the fleet. What a window can
 * miss: an intent created more than an hour before this process started, or one whose commit became
 * visible more than the intent timeout after its creation time (writes blocked while the synchronous
 * standby was away). Once an hour a pass looks at every live online intent (about 1 s of PostgreSQL
 * with some 750,000 intents stored), the first time at a random moment of the process's first hour, so
 * processes started together do not scan together; and a device that asks again has its stale intent
 * released there and then (EnrolmentService's resolveConflict).
 */
export class StaleIntentRelease {
  /** How often a pass looks at every live online intent, not only the latest window. */
  static readonly FULL_SCAN_EVERY_MS = 3_600_000;
  private staleScanFrom: Date | null = null;
  private nextFullScanAt: number | undefined;

  constructor(
    private readonly store: StaleIntentStore,
    private readonly site: SiteId,
    /** An online intent with no certificate after this long is released (FLEETPKI_INTENT_TIMEOUT_SECONDS). */
    private readonly intentTimeoutSeconds: number,
  ) {}

  /** One pass; returns how many intents were released. */
  async releaseStaleIntents(actor: string, now = Date.now()): Promise<number> {
    this.nextFullScanAt ??= now + Math.random() * StaleIntentRelease.FULL_SCAN_EVERY_MS;
    const full = now >= this.nextFullScanAt;
    const from = full ? null : (this.staleScanFrom ?? new Date(now - StaleIntentRelease.FULL_SCAN_EVERY_MS - this.intentTimeoutSeconds * 1000));
    const scan = await this.store.staleOnlineIntents(this.intentTimeoutSeconds, from);
    let released = 0;
    for (const serial of scan.serials) {
      if (await this.store.retireIntent(this.site, actor, serial, { kind: 'stale', olderThanSeconds: this.intentTimeoutSeconds })) released++;
    }
    // Moved on only once the pass went through: a failed pass is repeated from the same place.
    if (full) this.nextFullScanAt = now + StaleIntentRelease.FULL_SCAN_EVERY_MS;
    this.staleScanFrom = scan.scannedUntil;
    return released;
  }
}
