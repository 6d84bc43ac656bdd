import { createHash } from 'node:crypto';
import type { Signer } from '@fleetpki/hsm';
import type { CertificateStatusRow, StoredOcspResponse } from '@fleetpki/store';
import { OCSP_ERROR, assembleOcspResponse, buildCertId, buildOcspResponseData, ocspResponseEntries, type OcspHashAlgorithm, type OcspIssuerHashes, type OcspStatus } from '@fleetpki/x509';

export interface OcspAnswer {
  readonly der: Buffer;
  /** Set for signed responses: the HTTP caching headers come from these (RFC 9919 6). */
  readonly thisUpdate?: Date;
  readonly nextUpdate?: Date;
  readonly etag?: string;
  readonly kind: 'good' | 'revoked' | 'unknown' | 'malformedRequest' | 'unauthorized' | 'tryLater' | 'internalError';
}

export const TRY_LATER: OcspAnswer = { der: OCSP_ERROR.tryLater, kind: 'tryLater' };

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

export function answerOf(der: Buffer, kind: OcspAnswer['kind'], thisUpdate: Date, nextUpdate: Date): OcspAnswer {
  return new SignedAnswer(der, kind, thisUpdate, nextUpdate);
}

/** The OCSP status of a certificate row, for the CA `caId` (another CA's serial is unknown here). */
export function ocspStatusOf(row: CertificateStatusRow | undefined, caId: string): OcspStatus {
  if (!row || row.caId !== caId) return { status: 'unknown' };
  if (row.revokedAt) return { status: 'revoked', revokedAt: row.revokedAt, reason: row.reason ?? 0 };
  return { status: 'good' };
}

/**
 * May a stored response be served? Only if it names the certificate by the canonical CertID (one stored
 * before CertIDs were canonical may echo the request that made it, and would be served for days), and
 * if the status signed inside it is the row's status (which callers compare with the live one): a
 * holder of a database role that writes ocsp_responses could put an older, validly signed "good" back
 * under a "revoked" status column. Answering one request and loading many in bulk both ask this.
 */
export function servableStored(stored: StoredOcspResponse | undefined, issuer: OcspIssuerHashes): StoredOcspResponse | undefined {
  if (!stored) return undefined;
  const entries = ocspResponseEntries(stored.der);
  return entries.length === 1 && entries[0]!.status === stored.status && entries[0]!.certId.equals(buildCertId(stored.hashAlg, issuer, stored.serial)) ? stored : undefined;
}

export interface OcspSingle {
  readonly hashAlgorithm: OcspHashAlgorithm;
  readonly serial: Buffer;
  readonly status: OcspStatus;
}

/** Signs OCSP responses of one issuing CA with its key (in the HSM); shared by answering and production. */
export class OcspSigning {
  private validity: { thisUpdate: Date; nextUpdate: Date } | undefined;

  constructor(
    private readonly issuer: OcspIssuerHashes,
    private readonly signer: Signer,
    /** nextUpdate - thisUpdate of a produced response. */
    private readonly validityMs = 7 * 86_400_000,
  ) {}

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
  async produce(singles: readonly OcspSingle[]): Promise<OcspAnswer> {
    const { thisUpdate, nextUpdate } = this.validityNow();
    const data = buildOcspResponseData(
      this.issuer,
      thisUpdate,
      singles.map((s) => ({ hashAlgorithm: s.hashAlgorithm, serial: s.serial, status: s.status, thisUpdate, nextUpdate })),
    );
    const der = assembleOcspResponse(data, await this.signer.sign(data));
    return answerOf(der, singles.length === 1 ? singles[0]!.status.status : 'good', thisUpdate, nextUpdate);
  }

  /**
   * Signs a single response for each item (in parallel, across the HSM sessions) and stores them in one
   * write; `onAnswer` sees each as it is signed (the responder caches them, revocation waiters get them).
   */
  async produceAndStore(
    save: (responses: readonly StoredOcspResponse[]) => Promise<void>,
    items: readonly { serial: Buffer; hashAlg: OcspHashAlgorithm; status: OcspStatus }[],
    onAnswer?: (index: number, answer: OcspAnswer) => void,
  ): Promise<number> {
    const produced: StoredOcspResponse[] = [];
    await Promise.all(
      items.map(async ({ serial, hashAlg, status }, i) => {
        if (status.status === 'unknown') return;
        const answer = await this.produce([{ hashAlgorithm: hashAlg, serial, status }]);
        produced.push({ serial, hashAlg, status: status.status, thisUpdate: answer.thisUpdate!, nextUpdate: answer.nextUpdate!, der: answer.der });
        onAnswer?.(i, answer);
      }),
    );
    await save(produced);
    return produced.length;
  }
}
