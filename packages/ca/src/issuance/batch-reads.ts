import { FleetError, eui64FromBytes, isUuid } from '@fleetpki/core';
import type { BatchRecord, BatchResultRow, Pool } from '@fleetpki/store';
import { postgresBatchReadStore } from './postgres-store.js';
import type { BatchReadStore } from './store.js';

/** Certificates a results page holds. */
export const BATCH_RESULT_PAGE = 2_000;
/** Devices a device-key page holds: each page's wrapping runs on the main thread, so keep each stretch short. */
export const BATCH_DEVICE_PAGE = 250;

/** A batch's results as they are read: pages of certificates, then where a resume starts. */
export type BatchResultsPart = { readonly page: readonly BatchResultRow[] } | { readonly end: { readonly cursor: number; readonly complete: boolean } };

/**
 * The batch lifecycle's reads (progress, results, device-key pages, listings), beside its writes
 * (BatchIntake, ChunkIssuer): routes and the console ask here, never the store.
 */
export class BatchReads {
  constructor(private readonly store: BatchReadStore) {}

  static forPool(pool: Pool): BatchReads {
    return new BatchReads(postgresBatchReadStore(pool));
  }

  /** The batch, when `visible` lets the caller see its manufacturer's batches; BATCH_NOT_FOUND otherwise (also for a malformed id). */
  async find(id: string, visible: (manufacturerId: string) => boolean): Promise<BatchRecord> {
    if (!isUuid(id)) throw new FleetError('BATCH_NOT_FOUND', `no batch ${id.slice(0, 40)}`, { httpStatus: 404 });
    const batch = await this.store.getBatch(id);
    if (!batch || !visible(batch.manufacturerId)) throw new FleetError('BATCH_NOT_FOUND', `no batch ${id}`, { httpStatus: 404 });
    return batch;
  }

  /** The newest batches, of one manufacturer (null: all), in the listing's shape. */
  async list(options: { manufacturerId: string | null; limit: number }) {
    const batches = await this.store.listBatches(options);
    return batches.map((b) => ({ id: b.id, manufacturer: b.manufacturerId, status: b.status, profile: b.profile, devices: b.deviceCount, certificatesRequested: b.itemCount, createdAt: b.createdAt.toISOString(), completedAt: b.completedAt?.toISOString() ?? null }));
  }

  /** A batch's progress: counts, rate, ETA, refused items and the throughput series. */
  async describe(batch: BatchRecord) {
    const [progress, series] = await Promise.all([this.store.readBatchProgress(batch.id), this.store.batchIssueSeries(batch.id)]);
    const elapsed = batch.startedAt ? ((batch.completedAt ?? new Date()).getTime() - batch.createdAt.getTime()) / 1000 : 0;
    const finished = progress.issued + progress.failed;
    const rate = elapsed > 0 ? finished / elapsed : 0;
    const remaining = batch.itemCount - finished;
    return {
      id: batch.id,
      manufacturer: batch.manufacturerId,
      status: batch.status,
      profile: batch.profile,
      devices: batch.deviceCount,
      certificatesRequested: batch.itemCount,
      issued: progress.issued,
      failed: progress.failed,
      chunks: { total: batch.chunkCount, done: progress.chunksDone, size: batch.chunkSize },
      skippedLines: batch.skippedLines,
      skipped: batch.skipReport,
      errors: progress.errors.map((e) => ({ line: e.line, eui64: eui64FromBytes(e.eui64), keyRole: e.keyRole, code: e.code })),
      signedManifest: batch.signed,
      manifestSha256: batch.manifestSha256.toString('hex'),
      createdAt: batch.createdAt.toISOString(),
      completedAt: batch.completedAt?.toISOString() ?? null,
      certificatesPerSecond: Math.round(rate),
      etaSeconds: batch.status === 'complete' ? 0 : rate > 0 ? Math.ceil(remaining / rate) : null,
      /** Certificates issued by each moment (up to 60 points, from chunk completions): the throughput chart. */
      issuedOverTime: series.map((p) => ({ at: p.at.toISOString(), issued: p.issued })),
    };
  }

  /**
   * A batch's certificates after `after` (a cursor: an item's seq), in pages, then the end: the cursor
   * to resume from and whether the batch is complete. Only chunks finished in order are read: a resumed
   * download must not skip one still being issued.
   */
  async *results(batchId: string, after: number, pageSize = BATCH_RESULT_PAGE): AsyncGenerator<BatchResultsPart> {
    let cursor = after;
    // The status first: a batch seen complete has every chunk done, so the prefix read after it is all of it.
    const before = await this.store.getBatch(batchId);
    const below = await this.store.batchFinishedPrefix(batchId);
    for (;;) {
      const page = await this.store.readBatchResults(batchId, cursor, pageSize, below);
      if (page.length === 0) break;
      cursor = page[page.length - 1]!.seq;
      yield { page };
    }
    // Past refused items at the end of the finished part too, so the next resume starts after them.
    yield { end: { cursor: Math.max(cursor, below - 1), complete: before?.status === 'complete' } };
  }

  /** The devices of a batch with an issued certificate, in EUI-64 order, a page at a time. */
  async *devicePages(batchId: string, pageSize = BATCH_DEVICE_PAGE): AsyncGenerator<Buffer[]> {
    let after: Buffer | null = null;
    for (;;) {
      const page = await this.store.listBatchDevices(batchId, after, pageSize);
      if (page.length === 0) return;
      after = page[page.length - 1]!;
      yield page;
    }
  }
}
