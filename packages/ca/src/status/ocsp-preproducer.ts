import type { IssueCursor } from '@fleetpki/store';
import type { OcspSigning } from './ocsp-signing.js';
import type { OcspProductionStore } from './store.js';

/** Responses refreshed / pre-produced in one pass at most: a full pass means more is waiting. */
export const OCSP_PASS_LIMITS = { refresh: 5_000, preProduce: 2_000 } as const;

/**
 * Pre-produces a SHA-1 CertID response (what OpenSSL and RFC 9919 clients send) for every certificate
 * of the CA, walking the certificates in issue order from where the last pass stopped; the responder
 * then serves them from the store. Active site only (`canWrite`).
 */
export class OcspPreProducer {
  private cursor: IssueCursor = { issuedAt: '-infinity', serial: Buffer.alloc(0) };
  /** Since when passes have ended with certificates still waiting (undefined: the last pass caught up). */
  private behindSince: number | undefined;

  constructor(
    private readonly store: OcspProductionStore,
    private readonly caId: string,
    private readonly signing: OcspSigning | undefined,
    private readonly canWrite: () => Promise<boolean>,
    /** True while revocations are being re-signed in this process: they go first. */
    private readonly revocationsWaiting: () => boolean = () => false,
  ) {}

  /**
   * Certificates issued since the last pass that have no response get one. Rows younger than `settleMs`
   * wait for the next pass, so a chunk still committing is not stepped over. Stops after `limit`
   * signatures or `budgetMs`, or when revocations are waiting to be re-signed or came in, so
   * revocations are never kept waiting behind a big backlog.
   */
  async preProduceNew(options: { limit?: number; budgetMs?: number; settleMs?: number } = {}): Promise<number> {
    const signing = this.signing;
    if (!signing || !(await this.canWrite())) return 0;
    const limit = options.limit ?? OCSP_PASS_LIMITS.preProduce;
    const deadline = Date.now() + (options.budgetMs ?? 2_000);
    const until = new Date(Date.now() - (options.settleMs ?? 10_000));
    let produced = 0;
    // A revocation committed during the pass (the generation moves) ends it: the responder's re-signer,
    // in another process, has the HSM first, as when both ran in one process.
    const generation = await this.store.revocationGeneration();
    let caughtUp = false;
    while (produced < limit && Date.now() < deadline && !this.revocationsWaiting()) {
      if (produced > 0 && (await this.store.revocationGeneration()) !== generation) break;
      const want = limit - produced;
      const rows = await this.store.certificatesIssuedAfter(this.caId, this.cursor, until, want);
      if (rows.length < want) caughtUp = true;
      if (rows.length === 0) break;
      const last = rows[rows.length - 1]!;
      const todo = rows.filter((r) => !r.hasResponse);
      await signing.produceAndStore(
        (responses) => this.store.saveOcspResponses(responses),
        todo.map((r) => ({ serial: r.serial, hashAlg: 'sha1' as const, status: r.revokedAt ? { status: 'revoked' as const, revokedAt: r.revokedAt, reason: r.reason ?? 0 } : { status: 'good' as const } })),
      );
      this.cursor = { issuedAt: last.issuedAt, serial: last.serial };
      produced += todo.length;
      if (caughtUp) break;
    }
    this.behindSince = caughtUp ? undefined : (this.behindSince ?? Date.now());
    return produced;
  }

  /**
   * How long passes have ended with certificates still waiting for their response (0: the last pass
   * reached the newest settled certificate). A pass that did not run (a standby) changes nothing.
   */
  backlogSeconds(): number {
    return this.behindSince === undefined ? 0 : (Date.now() - this.behindSince) / 1000;
  }
}
