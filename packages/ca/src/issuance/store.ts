import type { SiteId } from '@fleetpki/core';
import type {
  ActiveEnrolment,
  BatchItemRow,
  BatchProgress,
  BatchRecord,
  BatchResultRow,
  CertificateRow,
  ChunkCertificate,
  ChunkIntent,
  ChunkWork,
  DeviceRefusal,
  EnrolmentProtocol,
  EnrolmentRequestRecord,
  IntentRow,
  ItemConflict,
  PresentedCertificate,
  RetireReason,
  StaleIntentScan,
  StoredCertificate,
  finaliseBatch,
  insertBatchDraft,
  recordChunkIntents,
} from '@fleetpki/store';

/*
 * The issuance capability's ports: for each caller, exactly the store calls it needs (Boulder: narrow
 * storage interfaces per caller). postgres-store.ts implements them over packages/store; the unit tests
 * implement them in memory. Types only here.
 */

/** The store calls online enrolment needs, and nothing more. */
export interface EnrolmentStore {
  /** Returns the serials recorded. */
  recordIntents(site: SiteId, intents: readonly IntentRow[]): Promise<Set<string>>;
  /** Returns the serials not stored because their intent was released meanwhile. */
  storeCertificates(site: SiteId, certificates: readonly CertificateRow[]): Promise<Set<string>>;
  /** Why an intent was not recorded: the device is not the manufacturer's (DeviceRefusal), or its role is taken. */
  explainRefusedIntent(eui64: Buffer, manufacturerId: string): Promise<DeviceRefusal | 'already-enrolled'>;
  findActiveEnrolment(eui64: Buffer, keyRole: string, profile: string): Promise<ActiveEnrolment | undefined>;
  retireIntent(site: SiteId, actor: string, serial: Buffer, why: RetireReason): Promise<boolean>;
  /** Stale online intents created at or after `createdFrom` (null: all of them). */
  staleOnlineIntents(olderThanSeconds: number, createdFrom: Date | null): Promise<StaleIntentScan>;
  /** The certificate a re-enrolling device authenticated with, and where it stands. */
  findPresentedCertificate(serial: Buffer): Promise<PresentedCertificate | undefined>;
  /** The request held for this device key under a held label: the existing one, or a new pending one (audited). */
  holdRequest(site: SiteId, request: { label: string; manufacturerId: string; eui64: Buffer; publicKeySha256: Buffer; protocol: EnrolmentProtocol; requestedBy: string }): Promise<EnrolmentRequestRecord>;
}

/** What a chunk's store calls are about: the batch, the chunk, who and where. */
export type ChunkContext = Parameters<typeof recordChunkIntents>[1];

/** The store calls a chunk needs, and nothing more (as EnrolmentStore for online enrolment). */
export interface ChunkStore {
  loadChunkWork(batchId: string, chunkNo: number): Promise<ChunkWork | undefined>;
  /** Commits the intents (and the items refused) before anything is signed; returns the seqs recorded. */
  recordChunkIntents(ctx: ChunkContext, intents: readonly ChunkIntent[], refused: readonly { seq: number; code: string }[]): Promise<Set<number>>;
  /** Stores the certificates and marks the chunk done, once; false when another attempt had. */
  completeChunk(ctx: ChunkContext & { chunkSize: number }, certificates: readonly ChunkCertificate[]): Promise<boolean>;
  /** Counts a failed attempt of a chunk, with its error, for the batch's operators. */
  noteChunkError(batchId: string, chunkNo: number, message: string): Promise<void>;
}

/** One manifest's transaction: the draft, its items, the conflicts found over them, the final batch. */
export interface BatchIntakeTransaction {
  insertBatchDraft(draft: Parameters<typeof insertBatchDraft>[1]): Promise<void>;
  copyBatchItems(batchId: string, items: AsyncIterable<BatchItemRow>): Promise<void>;
  findBatchByIdempotencyKey(manufacturerId: string, key: string): Promise<BatchRecord | undefined>;
  findItemConflicts(batchId: string, manufacturerId: string, profile: string, limit: number): Promise<ItemConflict[]>;
  deleteBatchLines(batchId: string, lines: readonly number[]): Promise<void>;
  finaliseBatch(batch: Parameters<typeof finaliseBatch>[1]): Promise<BatchRecord>;
}

/** The store calls a manifest upload needs (BatchIntake). */
export interface BatchIntakeStore {
  findBatchByIdempotencyKey(manufacturerId: string, key: string): Promise<BatchRecord | undefined>;
  getManufacturerManifestKey(manufacturerId: string): Promise<Buffer | null>;
  /** Runs `work` in one transaction: committed when it returns, rolled back when it throws. */
  inTransaction<T>(work: (tx: BatchIntakeTransaction) => Promise<T>): Promise<T>;
  /** Did `err` come from a unique constraint (the same manifest or key committed concurrently)? */
  isDuplicate(err: unknown): boolean;
}

/** The manufacturer's registered manifest-signing key (raw public keys online). */
export interface ManifestKeyStore {
  getManufacturerManifestKey(manufacturerId: string): Promise<Buffer | null>;
}

/** Whose devices these are (EUI-64 ranges): the first one not `manufacturerId`'s, and why. */
export interface DeviceOwnershipStore {
  findDeviceNotOwned(manufacturerId: string, eui64s: readonly Buffer[]): Promise<{ eui64: Buffer; refusal: DeviceRefusal } | undefined>;
}

/** The reads behind a batch's progress, results and device keys (BatchReads). */
export interface BatchReadStore {
  getBatch(id: string): Promise<BatchRecord | undefined>;
  listBatches(options: { manufacturerId: string | null; limit: number }): Promise<BatchRecord[]>;
  readBatchProgress(batchId: string): Promise<BatchProgress>;
  batchIssueSeries(batchId: string): Promise<{ at: Date; issued: number }[]>;
  /** Every item below the returned seq is in a finished chunk. */
  batchFinishedPrefix(batchId: string): Promise<number>;
  readBatchResults(batchId: string, afterSeq: number, limit: number, belowSeq: number): Promise<BatchResultRow[]>;
  listBatchDevices(batchId: string, after: Buffer | null, limit: number): Promise<Buffer[]>;
}

/** The reads behind certificate lookups (CertificateReads). */
export interface CertificateReadStore {
  getCertificate(serial: Buffer): Promise<StoredCertificate | undefined>;
  listDeviceCertificates(eui64: Buffer): Promise<StoredCertificate[]>;
}

/** The batch outbox as its reconciler sees it: chunks not done yet, batches whose chunks all are. */
export interface BatchOutboxStore {
  listUnfinishedChunks(limit: number): Promise<{ batchId: string; chunkNo: number }[]>;
  /** Marks complete every batch whose chunks are all done; returns how many. */
  completeFinishedBatches(): Promise<number>;
}

/** Where chunk jobs go (the site's Redis queue): only enqueue, so issuance needs no queue package. */
export interface ChunkJobQueue {
  enqueue(jobs: readonly { batchId: string; chunkNo: number }[]): Promise<void>;
}
