import type { SiteId } from '@fleetpki/core';
import type {
  CaRecord,
  CertificateStatusRow,
  CrlRecord,
  CrlState,
  IssueCursor,
  IssuedCertificateStatus,
  OcspLookup,
  RevocationCursor,
  RevocationOutcome,
  RevocationPreview,
  RevocationRequest,
  RevocationTarget,
  StoredOcspResponse,
  StoredOcspResponsePage,
} from '@fleetpki/store';

// The status capability's ports: each caller sees only the store calls it makes (Boulder's
// sa/proto/subsets.go). postgres-store.ts implements them all; unit tests use in-memory fakes.

/** What answering OCSP reads and writes: one lookup per request, status reads, stored responses. */
export interface OcspAnswerStore {
  lookupOcsp(serial: Buffer, hashAlg: 'sha1' | 'sha256'): Promise<OcspLookup>;
  certificateStatus(serial: Buffer): Promise<CertificateStatusRow | undefined>;
  /** Bumped by every revocation that revoked something: a cached "good" is served while it is unchanged. */
  revocationGeneration(): Promise<number>;
  saveOcspResponses(responses: readonly StoredOcspResponse[]): Promise<void>;
}

/** What warming the responder's cache reads: stored responses in pages, each with its certificate's status now. */
export interface OcspWarmStore {
  /** Valid beyond `validBeyond`, in (serial, hash algorithm) order after `after`: the warm-up at start. */
  storedOcspResponsesBySerial(after: { serial: Buffer; hashAlg: 'sha1' | 'sha256' } | undefined, validBeyond: Date, limit: number): Promise<StoredOcspResponsePage>;
  /** Stored after position `afterSeq` of the feed, in feed order: what the daemons wrote since. */
  storedOcspResponsesSince(afterSeq: string, limit: number): Promise<StoredOcspResponsePage>;
  /** The feed's last position written: a responder starting now follows from here. */
  ocspResponseFeedPosition(): Promise<string>;
}

/** What re-signing revocations reads: the revocations made since a cursor. */
export interface RevocationFeedStore {
  revocationsSince(cursor: RevocationCursor, limit: number): Promise<{ serial: Buffer; caId: string; revokedAt: Date; reason: number; createdAt: string }[]>;
  saveOcspResponses(responses: readonly StoredOcspResponse[]): Promise<void>;
}

/** What pre-producing and refreshing OCSP responses read and write. */
export interface OcspProductionStore {
  revocationGeneration(): Promise<number>;
  certificateStatus(serial: Buffer): Promise<CertificateStatusRow | undefined>;
  certificatesIssuedAfter(caId: string, cursor: IssueCursor, until: Date, limit: number): Promise<IssuedCertificateStatus[]>;
  ocspResponsesExpiringBefore(caId: string, before: Date, limit: number): Promise<{ serial: Buffer; hashAlg: 'sha1' | 'sha256' }[]>;
  saveOcspResponses(responses: readonly StoredOcspResponse[]): Promise<void>;
}

/** A consistent view of the revocations while CRLs are built (revocations wait for it). */
export interface CrlSnapshotPort {
  /** Every revocation created up to this instant is visible here, and no later one. */
  readonly coversUntil: Date;
  revokedInShard(caId: string, shard: number, after?: Date): Promise<{ serial: Buffer; revokedAt: Date; reason: number }[]>;
  previousFull(caId: string, shard: number): Promise<CrlRecord | undefined>;
  nextCrlNumber(caId: string): Promise<bigint>;
  saveCrl(crl: CrlRecord): Promise<void>;
  clearDirty(caId: string, shards: readonly number[]): Promise<void>;
}

/** What the CRL publisher reads and writes. */
export interface CrlPublicationStore {
  dirtyShards(caId: string): Promise<{ shard: number; since: Date }[]>;
  /** True while recent revocations have no stored "revoked" OCSP response yet (the responder is re-signing them). */
  revocationsAwaitingOcsp(caId: string): Promise<boolean>;
  fullCrls(caId: string): Promise<Omit<CrlRecord, 'der'>[]>;
  withCrlSnapshot<T>(fn: (snapshot: CrlSnapshotPort) => Promise<T>): Promise<T>;
}

/** What serving CRLs and finding the CA to answer for read. */
export interface StatusReadStore {
  crl(caId: string, shard: number, kind: 'full' | 'delta'): Promise<CrlRecord | undefined>;
  cas(): Promise<CaRecord[]>;
}

/** What revoking certificates and CAs reads and writes. */
export interface RevocationStore {
  batchOwner(batchId: string): Promise<string | undefined>;
  revokeCertificates(request: RevocationRequest): Promise<RevocationOutcome>;
  previewRevocation(target: RevocationTarget): Promise<RevocationPreview>;
  cas(): Promise<CaRecord[]>;
  /** Marks the CA revoked and writes its audit row, in one transaction. */
  markCaRevoked(caId: string, reason: number, approvalId: string, audit: { site: SiteId; actor: string; details: Record<string, unknown> }): Promise<void>;
  /** Database time (approval expiry does not depend on the service hosts' clocks). */
  databaseNow(): Promise<Date>;
}

/** What the status responder's metrics read at a scrape (docs/metrics.md, Status). */
export interface StatusHealthStore {
  crlStates(): Promise<CrlState[]>;
  unsignedRevocations(): Promise<{ caId: string; count: number; oldestSeconds: number }[]>;
}

export type StatusStore = StatusHealthStore & OcspAnswerStore & OcspWarmStore & RevocationFeedStore & OcspProductionStore & CrlPublicationStore & StatusReadStore & RevocationStore;
