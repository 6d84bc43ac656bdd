import { createHash } from 'node:crypto';
import type { Signer } from '@fleetpki/hsm';
import { GroupCommitter } from '../issuance/group-commit.js';
import { certificatesIssuedAfter, getCertificateStatus, lookupOcsp, ocspResponsesExpiringBefore, revocationGeneration, revocationsSince, saveOcspResponses, type CertificateStatusRow, type IssueCursor, type Pool, type RevocationCursor, type StoredOcspResponse } from '@fleetpki/store';
import {
  OCSP_ERROR,
  OcspMalformedError,
  assembleOcspResponse,
  buildCertId,
  buildOcspResponseData,
  certIdMatchesIssuer,
  ocspResponseEntries,
  parseOcspRequest,
  type OcspCertId,
  type OcspHashAlgorithm,
  type OcspIssuerHashes,
  type OcspStatus,
} from '@fleetpki/x509';

// Callers build requests for the responder's CertIDs (tests, drills, benchmarks) from here as before.
export { buildCertId, buildOcspRequest } from '@fleetpki/x509';

export interface OcspAnswer {
  readonly der: Buffer;
  /** Set for signed responses: the HTTP caching headers come from these (RFC 9919 6). */
  readonly thisUpdate?: Date;
  readonly nextUpdate?: Date;
  readonly etag?: string;
  readonly kind: 'good' | 'revoked' | 'unknown' | 'malformedRequest' | 'unauthorized' | 'tryLater' | 'internalError';
}

export interface OcspResponderOptions {
  /** nextUpdate - thisUpdate of a produced response. */
  readonly validityMs?: number;
  /**
   * May this site say "good" now (ca/site-lease.ts: the active site holding its lease, or a standby
   * streaming from its primary)? When not, a "good" answer becomes tryLater; revoked stays revoked.
   */
  readonly vouching?: () => boolean;
  /**
   * Signing on request (unknown serials, several CertIDs, a response not pre-produced) takes a bounded
   * share of the HSM, so revocation re-signing keeps its pace: at most `concurrency` such signatures at
   * once, and unknown or multi-CertID requests at most `perAddressPerSecond` per client address.
   */
  readonly onDemand?: { readonly concurrency: number; readonly perAddressPerSecond: number };
  /** A response is produced again when less than this is left (before nextUpdate, RFC 9919 pre-production). */
  readonly refreshBeforeMs?: number;
  /** Responses kept in memory; the store holds them all. */
  readonly cacheEntries?: number;
}

/** Revocations are re-signed in slices of this many (one store commit each). */
const REVOCATION_SLICE = 500;
/** Enough to keep the signing threads fed while a slice's commit waits for the standby. */
const REVOCATION_SLICES_IN_FLIGHT = 4;

/** A revocation picked up and waiting for its re-signed response. */
interface PendingRevocation {
  readonly serial: Buffer;
  readonly hashAlg: 'sha1';
  readonly status: OcspStatus;
  /** In a slice being signed (a request for it no longer moves it forward). */
  taken: boolean;
  readonly done: Promise<OcspAnswer | undefined>;
  readonly resolve: (answer: OcspAnswer | undefined) => void;
}

interface Cached {
  readonly answer: OcspAnswer;
  readonly refreshAt: number;
  /** The revocation generation read before the status this answer says: "good" is served only while it is current. */
  readonly generation: number;
}

/**
 * The revocation generation as of a read that started after the caller asked: requests arriving while
 * a read is in flight share the next one. One small query serves every concurrent "good" answer.
 */
class GenerationWatch {
  private running: Promise<number> | undefined;
  private next: Promise<number> | undefined;

  constructor(private readonly read: () => Promise<number>) {}

  current(): Promise<number> {
    if (!this.running) {
      this.running = this.read().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.current();
      });
    return this.next;
  }
}

/** Token buckets per client address and a bound on concurrent on-demand signatures. */
class OnDemandSigning {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limits: { concurrency: number; perAddressPerSecond: number }) {}

  private bucket(address: string): { tokens: number; at: number } {
    const now = Date.now();
    const b = this.buckets.get(address) ?? { tokens: this.limits.perAddressPerSecond, at: now };
    b.tokens = Math.min(this.limits.perAddressPerSecond, b.tokens + ((now - b.at) / 1000) * this.limits.perAddressPerSecond);
    b.at = now;
    if (this.buckets.size > 100_000) this.buckets.clear();
    this.buckets.set(address, b);
    return b;
  }

  /** Takes one on-demand signature from the address's budget, if it has one left. */
  admit(address: string): boolean {
    const b = this.bucket(address);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Has the address spent its budget (it is asking for serials nobody issued faster than allowed)? */
  exhausted(address: string): boolean {
    return this.buckets.has(address) && this.bucket(address).tokens < 1;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limits.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

const TRY_LATER: OcspAnswer = { der: OCSP_ERROR.tryLater, kind: 'tryLater' };

/** A signed answer; its ETag (only GET answers carry one) is hashed on first use, not per signature. */
class SignedAnswer implements OcspAnswer {
  private tag: string | undefined;

  constructor(
    readonly der: Buffer,
    readonly kind: OcspAnswer['kind'],
    readonly thisUpdate: Date,
    readonly nextUpdate: Date,
  ) {}

  get etag(): string {
    return (this.tag ??= `"${createHash('sha1').update(this.der).digest('hex')}"`);
  }
}

function answerOf(der: Buffer, kind: OcspAnswer['kind'], thisUpdate: Date, nextUpdate: Date): OcspAnswer {
  return new SignedAnswer(der, kind, thisUpdate, nextUpdate);
}

/**
 * An OCSP responder for one issuing CA (RFC 6960, RFC 9919 lightweight profile): responses are
 * pre-produced, stored (so the standby site serves them too) and cached in memory; a revocation is
 * picked up within `watchEveryMs` and re-signed at once. Without a signer (a standby site whose HSM has
 * no clone of the key yet) it serves what is stored and answers tryLater for the rest. Garbage gets
 * malformedRequest, never an exception.
 */
/** Responses refreshed / pre-produced in one pass at most: a full pass means more is waiting. */
export const OCSP_PASS_LIMITS = { refresh: 5_000, preProduce: 2_000 } as const;

export class OcspResponder {
  private readonly cache = new Map<string, Cached>();
  private validity: { thisUpdate: Date; nextUpdate: Date } | undefined;
  private readonly validityMs: number;
  private readonly refreshBeforeMs: number;
  private readonly cacheEntries: number;
  private revocationCursor: RevocationCursor = { createdAt: '-infinity', serial: Buffer.alloc(0) };
  private issueCursor: IssueCursor = { issuedAt: '-infinity', serial: Buffer.alloc(0) };
  private readonly generations: GenerationWatch;
  private readonly vouching: () => boolean;
  private readonly onDemand: OnDemandSigning;
  /** Revocations picked up and not re-signed yet, by serial (hex); `urgent` are those asked for. */
  private readonly pendingRevocations = new Map<string, PendingRevocation>();
  private readonly urgent: PendingRevocation[] = [];
  /** Responses produced on request are stored in groups: one synchronous-replication round trip for many. */
  private readonly saves = new GroupCommitter<StoredOcspResponse, void>(
    async (items) => {
      await saveOcspResponses(this.pool, items);
      return items.map(() => undefined);
    },
    { maxBatch: 1_000, maxConcurrent: 2 },
  );

  constructor(
    private readonly pool: Pool,
    private readonly caId: string,
    private readonly issuer: OcspIssuerHashes,
    private readonly signer: Signer | undefined,
    private readonly canWrite: () => Promise<boolean>,
    options: OcspResponderOptions = {},
  ) {
    this.validityMs = options.validityMs ?? 7 * 86_400_000;
    this.refreshBeforeMs = options.refreshBeforeMs ?? 3.5 * 86_400_000;
    this.cacheEntries = options.cacheEntries ?? 500_000;
    this.generations = new GenerationWatch(() => revocationGeneration(this.pool));
    this.vouching = options.vouching ?? (() => true);
    this.onDemand = new OnDemandSigning(options.onDemand ?? { concurrency: 1, perAddressPerSecond: 20 });
  }

  /**
   * The invariant this serves: once a revocation has committed (and, on a standby, been applied, which
   * synchronous remote_apply guarantees before it is acknowledged), no answer to a request that arrived
   * afterwards says "good" for it. A cached "good" is served only if the revocation generation, read
   * after the request arrived, is the one read before its status; otherwise the status is read again.
   */
  async respond(requestDer: Uint8Array, clientAddress = 'local'): Promise<OcspAnswer> {
    let ids: OcspCertId[];
    try {
      ids = parseOcspRequest(requestDer);
    } catch (err) {
      if (err instanceof OcspMalformedError) return { der: OCSP_ERROR.malformedRequest, kind: 'malformedRequest' };
      throw err;
    }
    if (!ids.every((id) => certIdMatchesIssuer(id, this.issuer))) return { der: OCSP_ERROR.unauthorized, kind: 'unauthorized' };
    try {
      if (ids.length === 1) return await this.single(ids[0]!, clientAddress);
      if (!this.onDemand.admit(clientAddress)) return TRY_LATER;
      return await this.multiple(ids);
    } catch {
      return { der: OCSP_ERROR.internalError, kind: 'internalError' };
    }
  }

  /**
   * The cache key: (hash algorithm, serial's value). The CA is this responder's own (a request for
   * another issuer never gets this far), and the parser gives the serial in one spelling only, so no
   * two requests that mean the same certificate have different keys, and no request shapes an entry.
   */
  private key(alg: OcspHashAlgorithm, serial: Buffer): string {
    return `${alg}:${serial.toString('hex')}`;
  }

  /**
   * A stored response is served only if it names the certificate by the canonical CertID (one stored
   * before CertIDs were canonical may echo the request that made it, and would be served for days), and
   * if the status signed inside it is the row's status (which callers compare with the live one): a
   * holder of a database role that writes ocsp_responses could put an older, validly signed "good" back
   * under a "revoked" status column.
   */
  private canonical(stored: StoredOcspResponse | undefined): StoredOcspResponse | undefined {
    if (!stored) return undefined;
    const entries = ocspResponseEntries(stored.der);
    return entries.length === 1 && entries[0]!.status === stored.status && entries[0]!.certId.equals(buildCertId(stored.hashAlg, this.issuer, stored.serial)) ? stored : undefined;
  }

  private async single(id: OcspCertId, clientAddress: string): Promise<OcspAnswer> {
    const alg = id.hashAlgorithm!;
    const key = this.key(alg, id.serial);
    // A revocation picked up but not re-signed yet: the answer is the one being produced, moved to the
    // front of the queue, rather than a status read and a second signature of our own.
    const pending = alg === 'sha1' ? this.pendingRevocations.get(id.serial.toString('hex')) : undefined;
    if (pending) {
      if (!pending.taken) this.urgent.push(pending);
      const answer = await pending.done;
      if (answer) return answer;
    }
    const cached = this.cache.get(key);
    if (cached && Date.now() < cached.refreshAt) {
      if (cached.answer.kind !== 'good') return cached.answer;
      if (!this.vouching()) return TRY_LATER;
      if ((await this.generations.current()) === cached.generation) return cached.answer;
      // A revocation committed since this status was read: read it again below.
    }
    // An address that has spent its unknown-serial budget is flooding: until the budget refills, what
    // is not in the cache gets tryLater without a database read, so the flood costs the responder
    // (and the revocations it must re-sign) next to nothing.
    if (this.onDemand.exhausted(clientAddress)) return TRY_LATER;
    // The generation, the status and the stored response of one snapshot, in one round trip.
    const found = await lookupOcsp(this.pool, id.serial, alg);
    const { generation, certificate } = found;
    const stored = this.canonical(found.stored);
    const status = this.statusFrom(certificate);
    if (status.status === 'good' && !this.vouching()) return TRY_LATER;
    if (stored && stored.status === status.status && stored.nextUpdate.getTime() - Date.now() > this.refreshBeforeMs / 4) {
      return this.remember(key, answerOf(stored.der, stored.status, stored.thisUpdate, stored.nextUpdate), generation);
    }
    if (!this.signer) return stored && stored.status === status.status && stored.nextUpdate.getTime() > Date.now() ? answerOf(stored.der, stored.status, stored.thisUpdate, stored.nextUpdate) : TRY_LATER;
    // Unknown serials are never cached or stored: each one is a signature, limited per address.
    if (status.status === 'unknown') {
      if (!this.onDemand.admit(clientAddress)) return TRY_LATER;
      return this.onDemand.run(() => this.produce([{ hashAlgorithm: alg, serial: id.serial, status }]));
    }
    // A known serial's response (re-signed after a revocation, or not pre-produced yet) is the
    // responder's own work: it does not queue behind the bounded share that unknown serials get.
    const answer = await this.produce([{ hashAlgorithm: alg, serial: id.serial, status }]);
    // Stored for the other processes and the standby, but the answer does not wait for it: a store that
    // cannot commit (a synchronous standby out of reach) must not hold relying parties' requests.
    if (await this.canWrite()) {
      this.saves.submit({ serial: id.serial, hashAlg: alg, status: status.status, thisUpdate: answer.thisUpdate!, nextUpdate: answer.nextUpdate!, der: answer.der }).catch(() => undefined);
    }
    return this.remember(key, answer, generation);
  }

  private async multiple(ids: readonly OcspCertId[]): Promise<OcspAnswer> {
    if (!this.signer) return TRY_LATER;
    const singles = await Promise.all(ids.map(async (id) => ({ hashAlgorithm: id.hashAlgorithm!, serial: id.serial, status: await this.statusOf(id.serial) })));
    if (singles.some((s) => s.status.status === 'good') && !this.vouching()) return TRY_LATER;
    return this.onDemand.run(() => this.produce(singles));
  }

  private async statusOf(serial: Buffer): Promise<OcspStatus> {
    return this.statusFrom(await getCertificateStatus(this.pool, serial));
  }

  private statusFrom(row: CertificateStatusRow | undefined): OcspStatus {
    if (!row || row.caId !== this.caId) return { status: 'unknown' };
    if (row.revokedAt) return { status: 'revoked', revokedAt: row.revokedAt, reason: row.reason ?? 0 };
    return { status: 'good' };
  }

  /**
   * This second's thisUpdate and nextUpdate: one pair of Date objects for every response signed in the
   * same second (hundreds of thousands of cached answers would otherwise carry two Dates each).
   */
  private validityNow(): { thisUpdate: Date; nextUpdate: Date } {
    const second = Math.floor(Date.now() / 1000) * 1000;
    if (this.validity?.thisUpdate.getTime() !== second) this.validity = { thisUpdate: new Date(second), nextUpdate: new Date(second + this.validityMs) };
    return this.validity;
  }

  /** Signs a response; each CertID in it is the canonical one for (hash algorithm, serial), never a request's. */
  private async produce(singles: readonly { hashAlgorithm: OcspHashAlgorithm; serial: Buffer; status: OcspStatus }[]): Promise<OcspAnswer> {
    const { thisUpdate, nextUpdate } = this.validityNow();
    const data = buildOcspResponseData(
      this.issuer,
      thisUpdate,
      singles.map((s) => ({ hashAlgorithm: s.hashAlgorithm, serial: s.serial, status: s.status, thisUpdate, nextUpdate })),
    );
    const der = assembleOcspResponse(data, await this.signer!.sign(data));
    return answerOf(der, singles.length === 1 ? singles[0]!.status.status : 'good', thisUpdate, nextUpdate);
  }

  private remember(key: string, answer: OcspAnswer, generation: number): OcspAnswer {
    if (this.cache.size >= this.cacheEntries) {
      // Drop the oldest tenth (Map keeps insertion order): cheap, and the store still has them.
      let n = Math.ceil(this.cacheEntries / 10);
      for (const k of this.cache.keys()) {
        this.cache.delete(k);
        if (--n === 0) break;
      }
    }
    const refreshAt = answer.nextUpdate ? answer.nextUpdate.getTime() - this.refreshBeforeMs : Date.now() + 60_000;
    this.cache.set(key, { answer, refreshAt, generation });
    if (answer.kind === 'good' && !this.vouching()) return TRY_LATER;
    return answer;
  }

  /**
   * Picks up revocations made since the last call. Where this site can sign and write, the SHA-1 CertID
   * response (the one pre-produced) is re-signed and stored slice by slice. Each one is pending from the
   * moment it is picked up: a request for it waits for its signature and moves it into the next slice
   * (relying parties that ask first are answered first), so no request makes the responder sign the
   * same revocation twice, and none reads a status the pass already knows. SHA-256 CertID answers are
   * evicted and produced on their next request. Without a signer, only evicts.
   */
  async applyNewRevocations(limit = 100_000): Promise<number> {
    const fresh = await revocationsSince(this.pool, this.revocationCursor, limit);
    if (fresh.length === 0) return 0;
    const last = fresh[fresh.length - 1]!;
    this.revocationCursor = { createdAt: last.createdAt, serial: last.serial };
    const evict = (rows: readonly { serial: Buffer }[]) => {
      for (const r of rows) for (const alg of ['sha1', 'sha256'] as const) this.cache.delete(this.key(alg, r.serial));
    };
    if (!this.signer || !(await this.canWrite())) {
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
              // Revoked is final: the generation does not matter for these.
              await this.produceAndStore(slice, 0, (i, answer) => this.settle(slice[i]!, answer));
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

  private expectRevoked(serial: Buffer, status: OcspStatus): PendingRevocation {
    const key = serial.toString('hex');
    const existing = this.pendingRevocations.get(key);
    if (existing) return existing;
    let resolve!: (answer: OcspAnswer | undefined) => void;
    const done = new Promise<OcspAnswer | undefined>((r) => (resolve = r));
    const p: PendingRevocation = { serial, hashAlg: 'sha1', status, taken: false, done, resolve };
    this.pendingRevocations.set(key, p);
    return p;
  }

  /** Answers the requests waiting for this revocation (undefined: they take the ordinary path). */
  private settle(p: PendingRevocation, answer: OcspAnswer | undefined): void {
    const key = p.serial.toString('hex');
    if (this.pendingRevocations.get(key) !== p) return;
    this.pendingRevocations.delete(key);
    p.resolve(answer);
  }

  /** Are revocations picked up and still being re-signed? */
  get resigningRevocations(): boolean {
    return this.pendingRevocations.size > 0;
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

  /** Re-produces stored responses that near their nextUpdate (active site only). */
  async refreshExpiring(limit = OCSP_PASS_LIMITS.refresh): Promise<number> {
    if (!this.signer || !(await this.canWrite())) return 0;
    const due = await ocspResponsesExpiringBefore(this.pool, new Date(Date.now() + this.refreshBeforeMs), limit);
    await this.resign(due);
    return due.length;
  }

  /** Starting the watermark at "now" skips replaying old revocations at start-up (the store has them). */
  startWatchingFrom(at: Date): void {
    this.revocationCursor = { createdAt: at.toISOString(), serial: Buffer.alloc(0) };
  }

  private async resign(items: readonly { serial: Buffer; hashAlg: OcspHashAlgorithm }[]): Promise<void> {
    const generation = await revocationGeneration(this.pool);
    const withStatus = await Promise.all(items.map(async (item) => ({ ...item, status: await this.statusOf(item.serial) })));
    await this.produceAndStore(withStatus, generation);
  }

  /**
   * Signs a response for each item (in parallel, across the HSM sessions), caches and stores them.
   * `generation` was read before the statuses were (a "good" among them is served only while current).
   */
  private async produceAndStore(
    items: readonly { serial: Buffer; hashAlg: OcspHashAlgorithm; status: OcspStatus }[],
    generation: number,
    onAnswer?: (index: number, answer: OcspAnswer) => void,
  ): Promise<void> {
    const produced: StoredOcspResponse[] = [];
    await Promise.all(
      items.map(async ({ serial, hashAlg, status }, i) => {
        if (status.status === 'unknown') return;
        const answer = await this.produce([{ hashAlgorithm: hashAlg, serial, status }]);
        produced.push({ serial, hashAlg, status: status.status, thisUpdate: answer.thisUpdate!, nextUpdate: answer.nextUpdate!, der: answer.der });
        this.remember(this.key(hashAlg, serial), answer, generation);
        onAnswer?.(i, answer);
      }),
    );
    await saveOcspResponses(this.pool, produced);
  }

  /**
   * Pre-produces a SHA-1 CertID response (what OpenSSL and RFC 9919 clients send) for certificates
   * issued since the last pass that have none, walking the certificates in issue order. Rows younger
   * than `settleMs` wait for the next pass, so a chunk still committing is not stepped over. Stops after
   * `limit` signatures or `budgetMs`, or when revocations are waiting to be re-signed, so revocations
   * are never kept waiting behind a big backlog.
   */
  async preProduceNew(options: { limit?: number; budgetMs?: number; settleMs?: number } = {}): Promise<number> {
    if (!this.signer || !(await this.canWrite())) return 0;
    const limit = options.limit ?? OCSP_PASS_LIMITS.preProduce;
    const deadline = Date.now() + (options.budgetMs ?? 2_000);
    const until = new Date(Date.now() - (options.settleMs ?? 10_000));
    let produced = 0;
    // Revocations being re-signed go first: pre-production waits for its next pass.
    while (produced < limit && Date.now() < deadline && this.pendingRevocations.size === 0) {
      const generation = await revocationGeneration(this.pool);
      const rows = await certificatesIssuedAfter(this.pool, this.caId, this.issueCursor, until, limit - produced);
      if (rows.length === 0) break;
      const last = rows[rows.length - 1]!;
      const todo = rows.filter((r) => !r.hasResponse);
      await this.produceAndStore(
        todo.map((r) => ({ serial: r.serial, hashAlg: 'sha1' as const, status: r.revokedAt ? { status: 'revoked' as const, revokedAt: r.revokedAt, reason: r.reason ?? 0 } : { status: 'good' as const } })),
        generation,
      );
      this.issueCursor = { issuedAt: last.issuedAt, serial: last.serial };
      produced += todo.length;
    }
    return produced;
  }
}
