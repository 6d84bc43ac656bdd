import {
  batchFinishedPrefix,
  batchIssueSeries,
  completeChunk,
  completeFinishedBatches,
  copyBatchItems,
  deleteBatchLines,
  explainRefusedIntent,
  finaliseBatch,
  findActiveEnrolment,
  findBatchByIdempotencyKey,
  findDeviceNotOwned,
  findItemConflicts,
  findPresentedCertificate,
  getBatch,
  getCertificate,
  getManufacturerManifestKey,
  holdEnrolmentRequest,
  insertBatchDraft,
  isUniqueViolation,
  listBatchDevices,
  listBatches,
  listDeviceCertificates,
  listUnfinishedChunks,
  loadChunkWork,
  noteChunkError,
  oldestUnfinishedChunkSeconds,
  readBatchProgress,
  readBatchResults,
  recordChunkIntents,
  recordIntents,
  retireIntent,
  staleOnlineIntents,
  storeCertificates,
  withTransaction,
  type Pool,
  type Queryable,
} from '@fleetpki/store';
import type {
  BatchIntakeStore,
  BatchOutboxStore,
  BatchReadStore,
  CertificateReadStore,
  ChunkStore,
  DeviceOwnershipStore,
  EnrolmentStore,
  ManifestKeyStore,
} from './store.js';

/*
 * The issuance capability's one PostgreSQL adapter: each port of store.ts over the repository
 * functions of packages/store. The only file of issuance that imports values from @fleetpki/store.
 */

export function postgresEnrolmentStore(pool: Pool): EnrolmentStore {
  return {
    recordIntents: (site, intents) => recordIntents(pool, site, intents),
    storeCertificates: (site, certificates) => storeCertificates(pool, site, certificates),
    explainRefusedIntent: (eui64, manufacturerId) => explainRefusedIntent(pool, eui64, manufacturerId),
    findActiveEnrolment: (eui64, keyRole, profile) => findActiveEnrolment(pool, eui64, keyRole, profile),
    retireIntent: (site, actor, serial, why) => retireIntent(pool, site, actor, serial, why),
    staleOnlineIntents: (olderThanSeconds, createdFrom) => staleOnlineIntents(pool, olderThanSeconds, createdFrom),
    findPresentedCertificate: (serial) => findPresentedCertificate(pool, serial),
    holdRequest: (site, request) => holdEnrolmentRequest(pool, site, request),
  };
}

export function postgresChunkStore(pool: Pool): ChunkStore {
  return {
    loadChunkWork: (batchId, chunkNo) => loadChunkWork(pool, batchId, chunkNo),
    recordChunkIntents: (ctx, intents, refused) => recordChunkIntents(pool, ctx, intents, refused),
    completeChunk: (ctx, certificates) => completeChunk(pool, ctx, certificates),
    noteChunkError: (batchId, chunkNo, message) => noteChunkError(pool, batchId, chunkNo, message),
  };
}

/** `pool` is the uploads' own (BatchIntake says why). */
export function postgresBatchIntakeStore(pool: Pool): BatchIntakeStore {
  return {
    findBatchByIdempotencyKey: (manufacturerId, key) => findBatchByIdempotencyKey(pool, manufacturerId, key),
    getManufacturerManifestKey: (manufacturerId) => getManufacturerManifestKey(pool, manufacturerId),
    inTransaction: (work) =>
      withTransaction(pool, (client) =>
        work({
          insertBatchDraft: (draft) => insertBatchDraft(client, draft),
          copyBatchItems: (batchId, items) => copyBatchItems(client, batchId, items),
          findBatchByIdempotencyKey: (manufacturerId, key) => findBatchByIdempotencyKey(client, manufacturerId, key),
          findItemConflicts: (batchId, manufacturerId, profile, limit) => findItemConflicts(client, batchId, manufacturerId, profile, limit),
          deleteBatchLines: (batchId, lines) => deleteBatchLines(client, batchId, lines),
          finaliseBatch: (batch) => finaliseBatch(client, batch),
        }),
      ),
    isDuplicate: (err) => isUniqueViolation(err),
  };
}

export function postgresManifestKeyStore(db: Queryable): ManifestKeyStore {
  return { getManufacturerManifestKey: (manufacturerId) => getManufacturerManifestKey(db, manufacturerId) };
}

export function postgresDeviceOwnershipStore(db: Queryable): DeviceOwnershipStore {
  return { findDeviceNotOwned: (manufacturerId, eui64s) => findDeviceNotOwned(db, manufacturerId, eui64s) };
}

export function postgresBatchReadStore(db: Queryable): BatchReadStore {
  return {
    getBatch: (id) => getBatch(db, id),
    listBatches: (options) => listBatches(db, options),
    readBatchProgress: (batchId) => readBatchProgress(db, batchId),
    batchIssueSeries: (batchId) => batchIssueSeries(db, batchId),
    batchFinishedPrefix: (batchId) => batchFinishedPrefix(db, batchId),
    readBatchResults: (batchId, afterSeq, limit, belowSeq) => readBatchResults(db, batchId, afterSeq, limit, belowSeq),
    listBatchDevices: (batchId, after, limit) => listBatchDevices(db, batchId, after, limit),
  };
}

export function postgresCertificateReadStore(db: Queryable): CertificateReadStore {
  return {
    getCertificate: (serial) => getCertificate(db, serial),
    listDeviceCertificates: (eui64) => listDeviceCertificates(db, eui64),
  };
}

export function postgresBatchOutboxStore(db: Queryable): BatchOutboxStore {
  return {
    listUnfinishedChunks: (limit) => listUnfinishedChunks(db, limit),
    completeFinishedBatches: () => completeFinishedBatches(db),
  };
}

/** What a batch worker's metrics read at a scrape (docs/metrics.md, Batch). */
export function postgresBatchHealthStore(db: Queryable): { oldestUnfinishedChunkSeconds(): Promise<number> } {
  return { oldestUnfinishedChunkSeconds: () => oldestUnfinishedChunkSeconds(db) };
}
