import type { RevocationCursor } from '@fleetpki/store';
import type { OcspStatus } from '@fleetpki/x509';
import type { OcspAnswerCache } from './ocsp-cache.js';
import type { OcspAnswer, OcspSigning } from './ocsp-signing.js';
import type { RevocationFeedStore } from './store.js';

/** Revocations are re-signed in slices of this many (one store commit each). */
const REVOCATION_SLICE = 500;
/** Enough to keep the signing threads fed while a slice's commit waits for the standby. */
const REVOCATION_SLICES_IN_FLIGHT = 4;

/** A revocation picked up and waiting for its re-signed response. */
interface PendingRevocation {
  readonly serial: Buffer;
  readonly status: OcspStatus;
  /** In a slice being signed (a request for it no longer moves it forward). */
  taken: boolean;
  readonly done: Promise<OcspAnswer | undefined>;
  readonly resolve: (answer: OcspAnswer | undefined) => void;
}

/** What the answering side asks of the re-signer: is this serial's revocation being signed right now? */
export interface PendingRevocations {
  /** The answer being produced for a revoked serial (moved to the front of the queue), or undefined. */
  waitFor(serial: Buffer): Promise<OcspAnswer | undefined> | undefined;
  /** Are revocations picked up and still being re-signed? */
  readonly busy: boolean;
}

/**
 * Notices revocations for the responder's cache and re-signs them. It stays in the responder's process
 * (not a separate daemon) on purpose: a relying party must see a revocation within a second or so, and a
 * request for a revocation being re-signed waits for that signature here and moves it to the front
 * (relying parties that ask first are answered first), so no request makes the responder sign the same
 * revocation twice. Only the SHA-1 CertID response (the one pre-produced) is re-signed and stored;
 * SHA-256 answers are evicted and produced on their next request. Without a signer or where this site
 * may not write, it only evicts.
 */
export class OcspRevocationResigner implements PendingRevocations {
  private cursor: RevocationCursor = { createdAt: '-infinity', serial: Buffer.alloc(0) };
  /** Revocations picked up and not re-signed yet, by serial (hex); `urgent` are those asked for. */
  private readonly pending = new Map<string, PendingRevocation>();
  private readonly urgent: PendingRevocation[] = [];

  constructor(
    private readonly store: RevocationFeedStore,
    private readonly caId: string,
    private readonly signing: OcspSigning | undefined,
    private readonly cache: OcspAnswerCache,
    private readonly canWrite: () => Promise<boolean>,
  ) {}

  /** Starting the watermark at "now" skips replaying old revocations at start-up (the store has them). */
  startWatchingFrom(at: Date): void {
    this.cursor = { createdAt: at.toISOString(), serial: Buffer.alloc(0) };
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  waitFor(serial: Buffer): Promise<OcspAnswer | undefined> | undefined {
    const p = this.pending.get(serial.toString('hex'));
    if (!p) return undefined;
    if (!p.taken) this.urgent.push(p);
    return p.done;
  }

  /** Picks up the revocations made since the last call (at most `limit`) and re-signs them slice by slice. */
  async applyNewRevocations(limit = 100_000): Promise<number> {
    const fresh = await this.store.revocationsSince(this.cursor, limit);
    if (fresh.length === 0) return 0;
    const last = fresh[fresh.length - 1]!;
    this.cursor = { createdAt: last.createdAt, serial: last.serial };
    const evict = (rows: readonly { serial: Buffer }[]) => {
      for (const r of rows) this.cache.evict(r.serial);
    };
    const signing = this.signing;
    if (!signing || !(await this.canWrite())) {
      evict(fresh);
      return fresh.length;
    }
    evict(fresh.filter((r) => r.caId !== this.caId));
    const queue = fresh.filter((r) => r.caId === this.caId).map((r) => this.expectRevoked(r.serial, { status: 'revoked', revokedAt: r.revokedAt, reason: r.reason }));
    let cursor = 0;
    const nextSlice = (): PendingRevocation[] => {
      const slice: PendingRevocation[] = [];
      const take = (p: PendingRevocation) => {
        if (p.taken) return;
        p.taken = true;
        slice.push(p);
      };
      while (slice.length < REVOCATION_SLICE && this.urgent.length > 0) take(this.urgent.shift()!);
      while (slice.length < REVOCATION_SLICE && cursor < queue.length) take(queue[cursor++]!);
      return slice;
    };
    try {
      // Slices in flight: some signing while the others' rows are committed.
      await Promise.all(
        Array.from({ length: REVOCATION_SLICES_IN_FLIGHT }, async () => {
          for (let slice = nextSlice(); slice.length > 0; slice = nextSlice()) {
            evict(slice);
            try {
              await signing.produceAndStore(
                (responses) => this.store.saveOcspResponses(responses),
                slice.map((p) => ({ serial: p.serial, hashAlg: 'sha1' as const, status: p.status })),
                (i, answer) => {
                  // Revoked is final: the generation does not matter for these.
                  this.cache.remember('sha1', slice[i]!.serial, answer, 0);
                  this.settle(slice[i]!, answer);
                },
              );
            } finally {
              // Signed or not (a failed slice is answered from the store and on demand), none stays pending.
              for (const p of slice) this.settle(p, undefined);
            }
          }
        }),
      );
    } finally {
      for (const p of queue) this.settle(p, undefined);
    }
    return fresh.length;
  }

  /** Applies every revocation waiting (in passes of `limit`), for at most `budgetMs`. */
  async applyAllNewRevocations(options: { limit?: number; budgetMs?: number } = {}): Promise<number> {
    const limit = options.limit ?? 100_000;
    const deadline = Date.now() + (options.budgetMs ?? 30_000);
    let total = 0;
    for (;;) {
      const n = await this.applyNewRevocations(limit);
      total += n;
      if (n < limit || Date.now() > deadline) return total;
    }
  }

  private expectRevoked(serial: Buffer, status: OcspStatus): PendingRevocation {
    const key = serial.toString('hex');
    const existing = this.pending.get(key);
    if (existing) return existing;
    let resolve!: (answer: OcspAnswer | undefined) => void;
    const done = new Promise<OcspAnswer | undefined>((r) => (resolve = r));
    const p: PendingRevocation = { serial, status, taken: false, done, resolve };
    this.pending.set(key, p);
    return p;
  }

  /** Answers the requests waiting for this revocation (undefined: they take the ordinary path). */
  private settle(p: PendingRevocation, answer: OcspAnswer | undefined): void {
    const key = p.serial.toString('hex');
    if (this.pending.get(key) !== p) return;
    this.pending.delete(key);
    p.resolve(answer);
  }
}
