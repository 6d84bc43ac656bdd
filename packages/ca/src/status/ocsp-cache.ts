import type { OcspHashAlgorithm } from '@fleetpki/x509';
import type { OcspAnswer } from './ocsp-signing.js';

interface Cached {
  readonly answer: OcspAnswer;
  readonly refreshAt: number;
  /** The revocation generation read before the status this answer says: "good" is served only while it is current. */
  readonly generation: number;
}

/**
 * The responder's answers in memory, by (hash algorithm, serial's value). The CA is the responder's
 * own (a request for another issuer never gets this far), and the parser gives the serial in one
 * spelling only, so no two requests that mean the same certificate have different keys, and no request
 * shapes an entry. The store holds every response; this holds the recent ones.
 */
export class OcspAnswerCache {
  private readonly entries = new Map<string, Cached>();

  constructor(
    /** An answer is looked up again when less than this is left before its nextUpdate. */
    readonly refreshBeforeMs = 3.5 * 86_400_000,
    private readonly maxEntries = 500_000,
  ) {}

  private key(alg: OcspHashAlgorithm, serial: Buffer): string {
    return `${alg}:${serial.toString('hex')}`;
  }

  /** A cached answer still fresh enough to serve, with the generation it was read at. */
  fresh(alg: OcspHashAlgorithm, serial: Buffer): { answer: OcspAnswer; generation: number } | undefined {
    const cached = this.entries.get(this.key(alg, serial));
    return cached && Date.now() < cached.refreshAt ? cached : undefined;
  }

  /** How many answers it holds at most (older ones are dropped to make room). */
  get capacity(): number {
    return this.maxEntries;
  }

  /**
   * An answer read in bulk (the warm-up, the feed of stored responses): taken unless the cache already
   * holds a revoked answer (final, and perhaps re-signed here after the bulk read's snapshot) or one
   * at least as new. Says whether it was taken.
   */
  offer(alg: OcspHashAlgorithm, serial: Buffer, answer: OcspAnswer, generation: number): boolean {
    const held = this.entries.get(this.key(alg, serial));
    if (held && (held.answer.kind === 'revoked' || (held.answer.thisUpdate?.getTime() ?? 0) >= (answer.thisUpdate?.getTime() ?? 0))) return false;
    this.remember(alg, serial, answer, generation);
    return true;
  }

  remember(alg: OcspHashAlgorithm, serial: Buffer, answer: OcspAnswer, generation: number): void {
    if (this.entries.size >= this.maxEntries) {
      // Drop the oldest tenth (Map keeps insertion order): cheap, and the store still has them.
      let n = Math.ceil(this.maxEntries / 10);
      for (const k of this.entries.keys()) {
        this.entries.delete(k);
        if (--n === 0) break;
      }
    }
    const refreshAt = answer.nextUpdate ? answer.nextUpdate.getTime() - this.refreshBeforeMs : Date.now() + 60_000;
    this.entries.set(this.key(alg, serial), { answer, refreshAt, generation });
  }

  /** Forgets both CertID answers of a serial (its status changed). */
  evict(serial: Buffer): void {
    for (const alg of ['sha1', 'sha256'] as const) this.entries.delete(this.key(alg, serial));
  }

  get size(): number {
    return this.entries.size;
  }
}
