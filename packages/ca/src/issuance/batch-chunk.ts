import { FleetError, isFleetError, withRequestId, type KeyRole, type SiteId } from '@fleetpki/core';
import type { ChunkCertificate, ChunkIntent, ChunkWork, Pool } from '@fleetpki/store';
import { checkCsr, inlinePossessionVerifier, type DevicePublicKey, type LintedTbs, type PossessionVerifier } from '@fleetpki/x509';
import { signCertificate, type IssuingCa } from './issuing-ca.js';
import { issuanceTime, prepareIssuance, rebuildIssuance } from './prepare-issuance.js';
import { CaStatusGuard } from '../sites/site-guard.js';
import { postgresChunkStore } from './postgres-store.js';
import type { ChunkStore } from './store.js';
import { countedChunkStore, type IssuanceCounts } from './counted-stores.js';

export interface ChunkOutcome {
  readonly issued: number;
  readonly refused: number;
  /** Another worker had finished this chunk already (a duplicate job): nothing was stored twice. */
  readonly alreadyDone: boolean;
  /** The request that uploaded the chunk's batch (X-Request-Id), for the worker's log line. */
  readonly requestId?: string;
}

/**
 * Issues one chunk of a batch, idempotently: verify proofs of possession, prepare each certificate
 * (prepareIssuance, as online enrolment does), commit the intents (replicated) before signing, sign
 * (the signing threads take the chunk as slices), store the certificates and mark the chunk done in one
 * transaction. A retry after a crash finds the intents it committed and re-signs exactly those TBSs
 * (same serial, same notBefore), so each (device, role) ends with one certificate whatever happens.
 */
export class ChunkIssuer {
  constructor(
    private readonly store: ChunkStore,
    private readonly ca: IssuingCa,
    private readonly site: SiteId,
    private readonly serialPrefix: number,
    private readonly caGuard: Pick<CaStatusGuard, 'assertActive'>,
    /** Where the CSRs' proofs of possession are checked (the worker's PossessionThreads). */
    private readonly possession: PossessionVerifier = inlinePossessionVerifier,
    private readonly actor = `batch-worker:${site}`,
  ) {}

  static forPool(pool: Pool, ca: IssuingCa, site: SiteId, serialPrefix: number, possession?: PossessionVerifier, counts?: IssuanceCounts): ChunkIssuer {
    const store = postgresChunkStore(pool);
    return new ChunkIssuer(counts ? countedChunkStore(store, counts) : store, ca, site, serialPrefix, new CaStatusGuard(pool), possession);
  }

  async issue(batchId: string, chunkNo: number): Promise<ChunkOutcome> {
    // A revoked CA signs nothing more; the chunk fails and stays in the outbox.
    await this.caGuard.assertActive(this.ca.record.id);
    const work = await this.store.loadChunkWork(batchId, chunkNo);
    if (!work) throw new FleetError('CHUNK_NOT_FOUND', `batch ${batchId} has no chunk ${chunkNo}`, { httpStatus: 404 });
    if (work.done) return { issued: 0, refused: 0, alreadyDone: true };
    // The rest runs as part of the upload's request: the chunk's audit rows and log lines carry its id.
    const requestId = work.batch.requestId ?? undefined;
    const outcome = await withRequestId(requestId, () => this.issueLoaded(work, batchId, chunkNo));
    return requestId === undefined ? outcome : { ...outcome, requestId };
  }

  private async issueLoaded(work: ChunkWork, batchId: string, chunkNo: number): Promise<ChunkOutcome> {
    const { batch } = work;
    const notBefore = issuanceTime();
    const fresh: ChunkIntent[] = [];
    const refused: { seq: number; code: string }[] = [];
    const toSign = new Map<number, { linted: LintedTbs; intent: ChunkIntent; notAfter: Date; crlShard: number }>();
    // Every proof of possession of the chunk is asked for at once: the checks travel to the threads together.
    const proofs = await Promise.all(work.items.map((item) => (item.errorCode || item.intent || !item.csr ? undefined : this.prove(item.csr))));

    for (const [i, item] of work.items.entries()) {
      if (item.errorCode) continue;
      const subject = { profileId: batch.profile, keyRole: item.keyRole as KeyRole, eui64: item.eui64, publicKeySpki: item.publicKey };
      if (item.intent) {
        // Retry: rebuild the TBS the intent committed to; it must be byte for byte the same.
        const p = rebuildIssuance(this.ca, subject, item.intent, `batch ${batchId} chunk ${chunkNo}`);
        const intent: ChunkIntent = { seq: item.seq, serial: p.serial, caId: this.ca.record.id, eui64: item.eui64, keyRole: item.keyRole, deviceType: item.deviceType, notBefore: p.notBefore, tbsSha256: p.tbsSha256 };
        toSign.set(item.seq, { linted: p.linted, intent, notAfter: p.notAfter, crlShard: p.crlShard });
        continue;
      }
      const proof = proofs[i];
      if (proof) {
        // The key the CSR proves must be the one intake stored for the item.
        const code = 'refusal' in proof ? proof.refusal : proof.key.spki.equals(item.publicKey) ? undefined : 'CSR_MALFORMED';
        if (code) {
          refused.push({ seq: item.seq, code });
          continue;
        }
      }
      const p = prepareIssuance(this.ca, this.serialPrefix, subject, notBefore);
      const intent: ChunkIntent = { seq: item.seq, serial: p.serial, caId: this.ca.record.id, eui64: item.eui64, keyRole: item.keyRole, deviceType: item.deviceType, notBefore, tbsSha256: p.tbsSha256 };
      fresh.push(intent);
      toSign.set(item.seq, { linted: p.linted, intent, notAfter: p.notAfter, crlShard: p.crlShard });
    }

    const ctx = { batchId, chunkNo, manufacturerId: batch.manufacturerId, profile: batch.profile, site: this.site, actor: this.actor };
    if (fresh.length > 0 || refused.length > 0) {
      const recorded = await this.store.recordChunkIntents(ctx, fresh, refused);
      // An intent that was not recorded lost either to another certificate (its item is now marked) or to
      // a duplicate job of this same chunk; either way this attempt's view is stale: start over from the store.
      if (fresh.some((i) => !recorded.has(i.seq))) {
        throw new FleetError('CHUNK_CONTENDED', `batch ${batchId} chunk ${chunkNo}: another attempt recorded intents meanwhile; retrying`, { httpStatus: 409 });
      }
    }

    const certificates: ChunkCertificate[] = await Promise.all(
      [...toSign.values()].map(async ({ linted, intent, notAfter, crlShard }) => ({
        serial: intent.serial,
        caId: intent.caId,
        eui64: intent.eui64,
        keyRole: intent.keyRole,
        der: await signCertificate(this.ca, linted),
        notBefore: intent.notBefore,
        notAfter,
        crlShard,
      })),
    );
    const stored = await this.store.completeChunk({ ...ctx, chunkSize: batch.chunkSize }, certificates);
    return { issued: stored ? certificates.length : 0, refused: refused.length, alreadyDone: !stored };
  }

  /**
   * A queued job's attempt: the chunk issued, or its failure noted on the chunk (attempts and last
   * error, for the batch's operators) before the error goes back to the queue, which retries it.
   */
  async attempt(batchId: string, chunkNo: number): Promise<ChunkOutcome> {
    try {
      return await this.issue(batchId, chunkNo);
    } catch (err) {
      await this.store.noteChunkError(batchId, chunkNo, isFleetError(err) ? `${err.code}: ${err.message}` : String(err)).catch(() => undefined);
      throw err;
    }
  }

  /** A CSR's proof of possession: the key it proves, or the error code it is refused with. */
  private async prove(csr: Buffer): Promise<{ key: DevicePublicKey } | { refusal: string }> {
    try {
      return { key: await checkCsr(csr, this.possession) };
    } catch (err) {
      if (!isFleetError(err)) throw err;
      return { refusal: err.code };
    }
  }
}
