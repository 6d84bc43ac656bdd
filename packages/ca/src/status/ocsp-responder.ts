import type { StoredOcspResponse } from '@fleetpki/store';
import {
  OCSP_ERROR,
  OcspMalformedError,
  certIdMatchesIssuer,
  parseOcspRequest,
  type OcspCertId,
  type OcspIssuerHashes,
} from '@fleetpki/x509';
import { GroupCommitter } from '../issuance/group-commit.js';
import { OcspAnswerCache } from './ocsp-cache.js';
import { GenerationWatch, OnDemandSigning } from './ocsp-on-demand.js';
import type { PendingRevocations } from './ocsp-revocations.js';
import { TRY_LATER, answerOf, ocspStatusOf, servableStored, type OcspAnswer, type OcspSigning } from './ocsp-signing.js';
import type { OcspAnswerStore } from './store.js';

// Callers build requests for the responder's CertIDs (tests, drills, benchmarks) from here as before.
export { buildCertId, buildOcspRequest } from '@fleetpki/x509';
export type { OcspAnswer } from './ocsp-signing.js';

export interface OcspResponderOptions {
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
  /** Revocations being re-signed in this process (a request for one waits for its signature). */
  readonly revocations?: PendingRevocations;
}

const NO_PENDING: PendingRevocations = { waitFor: () => undefined, busy: false };

/**
 * Answers OCSP for one issuing CA (RFC 6960, RFC 9919 lightweight profile) from its cache and the
 * store, where the daemons (ocsp-preproducer, ocsp-refresher) and the revocation re-signer put signed
 * responses; it signs only what is missing (unknown serials, several CertIDs, a response not produced
 * yet). Without a signer (a standby site whose HSM has no clone of the key yet) it serves what is
 * stored and answers tryLater for the rest. Garbage gets malformedRequest, never an exception.
 */
export class OcspResponder {
  private readonly generations: GenerationWatch;
  private readonly vouching: () => boolean;
  private readonly onDemand: OnDemandSigning;
  private readonly revocations: PendingRevocations;
  /** Responses produced on request are stored in groups: one synchronous-replication round trip for many. */
  private readonly saves: GroupCommitter<StoredOcspResponse, void>;

  constructor(
    private readonly store: OcspAnswerStore,
    private readonly caId: string,
    private readonly issuer: OcspIssuerHashes,
    private readonly signing: OcspSigning | undefined,
    private readonly canWrite: () => Promise<boolean>,
    readonly cache: OcspAnswerCache = new OcspAnswerCache(),
    options: OcspResponderOptions = {},
  ) {
    this.generations = new GenerationWatch(() => store.revocationGeneration());
    this.vouching = options.vouching ?? (() => true);
    this.onDemand = new OnDemandSigning(options.onDemand ?? { concurrency: 1, perAddressPerSecond: 20 });
    this.revocations = options.revocations ?? NO_PENDING;
    this.saves = new GroupCommitter<StoredOcspResponse, void>(
      async (items) => {
        await store.saveOcspResponses(items);
        return items.map(() => undefined);
      },
      { maxBatch: 1_000, maxConcurrent: 2 },
    );
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

  private async single(id: OcspCertId, clientAddress: string): Promise<OcspAnswer> {
    const alg = id.hashAlgorithm!;
    // A revocation picked up but not re-signed yet: the answer is the one being produced, moved to the
    // front of the queue, rather than a status read and a second signature of our own.
    const pending = alg === 'sha1' ? this.revocations.waitFor(id.serial) : undefined;
    if (pending) {
      const answer = await pending;
      if (answer) return answer;
    }
    const cached = this.cache.fresh(alg, id.serial);
    if (cached) {
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
    const found = await this.store.lookupOcsp(id.serial, alg);
    const { generation, certificate } = found;
    const stored = servableStored(found.stored, this.issuer);
    const status = ocspStatusOf(certificate, this.caId);
    if (status.status === 'good' && !this.vouching()) return TRY_LATER;
    if (stored && stored.status === status.status && stored.nextUpdate.getTime() - Date.now() > this.cache.refreshBeforeMs / 4) {
      return this.remember(id, answerOf(stored.der, stored.status, stored.thisUpdate, stored.nextUpdate), generation);
    }
    const signing = this.signing;
    if (!signing) return stored && stored.status === status.status && stored.nextUpdate.getTime() > Date.now() ? answerOf(stored.der, stored.status, stored.thisUpdate, stored.nextUpdate) : TRY_LATER;
    // Unknown serials are never cached or stored: each one is a signature, limited per address.
    if (status.status === 'unknown') {
      if (!this.onDemand.admit(clientAddress)) return TRY_LATER;
      return this.onDemand.run(() => signing.produce([{ hashAlgorithm: alg, serial: id.serial, status }]));
    }
    // A known serial's response (re-signed after a revocation, or not pre-produced yet) is the
    // responder's own work: it does not queue behind the bounded share that unknown serials get.
    const answer = await signing.produce([{ hashAlgorithm: alg, serial: id.serial, status }]);
    // Stored for the other processes and the standby, but the answer does not wait for it: a store that
    // cannot commit (a synchronous standby out of reach) must not hold relying parties' requests.
    if (await this.canWrite()) {
      this.saves.submit({ serial: id.serial, hashAlg: alg, status: status.status, thisUpdate: answer.thisUpdate!, nextUpdate: answer.nextUpdate!, der: answer.der }).catch(() => undefined);
    }
    return this.remember(id, answer, generation);
  }

  private async multiple(ids: readonly OcspCertId[]): Promise<OcspAnswer> {
    const signing = this.signing;
    if (!signing) return TRY_LATER;
    const singles = await Promise.all(ids.map(async (id) => ({ hashAlgorithm: id.hashAlgorithm!, serial: id.serial, status: ocspStatusOf(await this.store.certificateStatus(id.serial), this.caId) })));
    if (singles.some((s) => s.status.status === 'good') && !this.vouching()) return TRY_LATER;
    return this.onDemand.run(() => signing.produce(singles));
  }

  private remember(id: OcspCertId, answer: OcspAnswer, generation: number): OcspAnswer {
    this.cache.remember(id.hashAlgorithm!, id.serial, answer, generation);
    if (answer.kind === 'good' && !this.vouching()) return TRY_LATER;
    return answer;
  }
}
