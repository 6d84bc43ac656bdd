import type { StoredOcspResponsePage } from '@fleetpki/store';
import type { OcspIssuerHashes } from '@fleetpki/x509';
import type { OcspAnswerCache } from './ocsp-cache.js';
import { answerOf, ocspStatusOf, servableStored } from './ocsp-signing.js';
import type { OcspWarmStore } from './store.js';

/** Rows read per statement: big enough to be few round trips, small enough not to hold the event loop. */
const PAGE = 5_000;

export interface CacheWarmth {
  /** cold: not started; warming: the warm-up at start is reading; warm: it ended (done, full or out of time). */
  readonly state: 'cold' | 'warming' | 'warm';
  /** Answers loaded by the warm-up at start. */
  readonly warmedUp: number;
  /** Answers loaded from the feed since. */
  readonly followed: number;
  /** Why the warm-up ended: every stored response read, the cache's share full, its time budget spent (or stopped), or a failed read (logged). */
  readonly ended?: 'read-all' | 'cache-full' | 'budget' | 'failed';
}

/**
 * Fills the responder's cache from the store, in bulk, since the responses it serves are produced in
 * another process (services/daemons): at start, every stored response still valid long enough (page by
 * page, bounded by the cache's size and a time budget), and afterwards what the feed says was stored
 * since (pre-produced, refreshed, re-signed, or signed on request by another responder). Without it
 * the first request for each certificate cost a database read.
 *
 * Nothing loaded here is trusted more than a single lookup: each response is taken only if its
 * certificate is this CA's, its stored status is the certificate's status in the same snapshot, and
 * it is servable as signed (servableStored); a "good" carries that snapshot's revocation generation, so
 * the responder serves it only while no revocation has committed since (OcspResponder.single).
 */
export class OcspCacheWarmer {
  private feedAt: string | undefined;
  private warmth: CacheWarmth = { state: 'cold', warmedUp: 0, followed: 0 };
  private stopped = false;

  constructor(
    private readonly store: OcspWarmStore,
    private readonly caId: string,
    private readonly issuer: OcspIssuerHashes,
    private readonly cache: OcspAnswerCache,
  ) {}

  get status(): CacheWarmth {
    return this.warmth;
  }

  /** Ends a warm-up under way after its current page (the process is closing). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * The warm-up at start. The feed's position is read first, so what is stored while the pages are read
   * is the feed's to load. Stops when every stored response was read, at nine tenths of the cache's
   * capacity (the rest is room for requests and the feed, so loading does not evict what it just
   * loaded), or after `budgetMs`.
   */
  async warmUp(options: { budgetMs?: number; share?: number } = {}): Promise<number> {
    this.feedAt ??= await this.store.ocspResponseFeedPosition();
    const deadline = Date.now() + (options.budgetMs ?? 60_000);
    const room = Math.floor(this.cache.capacity * (options.share ?? 0.9));
    this.warmth = { ...this.warmth, state: 'warming' };
    let after: { serial: Buffer; hashAlg: 'sha1' | 'sha256' } | undefined;
    let loaded = 0;
    let ended: CacheWarmth['ended'] = 'read-all';
    try {
      for (;;) {
        if (Date.now() > deadline || this.stopped) {
          ended = 'budget';
          break;
        }
        // Only responses the cache would serve: one within its refresh margin is looked up per request anyway.
        const page = await this.store.storedOcspResponsesBySerial(after, new Date(Date.now() + this.cache.refreshBeforeMs), PAGE);
        loaded += this.load(page, room);
        this.warmth = { ...this.warmth, warmedUp: loaded };
        if (this.cache.size >= room) {
          ended = 'cache-full';
          break;
        }
        const last = page.rows[page.rows.length - 1];
        if (!last || page.rows.length < PAGE) break;
        after = { serial: last.stored.serial, hashAlg: last.stored.hashAlg };
        // Requests arriving meanwhile are answered between pages.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      ended = 'failed';
      throw err;
    } finally {
      this.warmth = { ...this.warmth, state: 'warm', warmedUp: loaded, ended };
    }
    return loaded;
  }

  /**
   * One pass of the feed: loads what was stored since the last pass, in pages, for at most `budgetMs`.
   * Says whether it stopped with more waiting (a full page last).
   */
  async follow(options: { budgetMs?: number } = {}): Promise<boolean> {
    this.feedAt ??= await this.store.ocspResponseFeedPosition();
    const deadline = Date.now() + (options.budgetMs ?? 1_000);
    for (;;) {
      const page = await this.store.storedOcspResponsesSince(this.feedAt, PAGE);
      const last = page.rows[page.rows.length - 1];
      if (!last) return false;
      this.feedAt = last.seq ?? this.feedAt;
      const loaded = this.load(page);
      this.warmth = { ...this.warmth, followed: this.warmth.followed + loaded };
      if (page.rows.length < PAGE) return false;
      if (Date.now() > deadline) return true;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Offers the cache each row of a page that a lookup would serve, while it holds fewer than `room`; returns how many it took. */
  private load(page: StoredOcspResponsePage, room = Infinity): number {
    let taken = 0;
    const now = Date.now();
    for (const { stored, certificate } of page.rows) {
      if (this.cache.size >= room) break;
      if (stored.nextUpdate.getTime() - this.cache.refreshBeforeMs <= now) continue;
      if (ocspStatusOf(certificate, this.caId).status !== stored.status) continue;
      if (!servableStored(stored, this.issuer)) continue;
      if (this.cache.offer(stored.hashAlg, stored.serial, answerOf(stored.der, stored.status, stored.thisUpdate, stored.nextUpdate), page.generation)) taken++;
    }
    return taken;
  }
}
