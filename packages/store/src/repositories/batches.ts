/* eslint-disable max-lines -- all SQL over batches, chunks and their items in one file, so a change of those tables is made and reviewed in one place */
import { copyRows, type CopyValue } from '../copy.js';
import type { Pool, PoolClient, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';
import { recordIntents } from './issuance.js';
import { currentRequestId } from '@fleetpki/core';

export type BatchStatus = 'accepted' | 'issuing' | 'complete' | 'failed' | 'cancelled';

export interface BatchRecord {
  readonly id: string;
  readonly manufacturerId: string;
  readonly idempotencyKey: string;
  readonly manifestSha256: Buffer;
  readonly profile: string;
  readonly status: BatchStatus;
  readonly deviceCount: number;
  readonly itemCount: number;
  readonly chunkCount: number;
  readonly chunkSize: number;
  readonly skippedLines: number;
  readonly skipReport: unknown[];
  readonly signed: boolean;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly completedAt: Date | null;
  /** The API request that uploaded it (X-Request-Id), null for batches made before migrations/0046. */
  readonly requestId?: string | null;
}

export interface BatchProgress {
  readonly chunksDone: number;
  readonly issued: number;
  readonly failed: number;
  /** Items the workers refused, first few, with their manifest line. */
  readonly errors: { line: number; eui64: Buffer; keyRole: string; code: string }[];
}

/** A key line of a batch as the upload stores it. */
export interface BatchItemRow {
  readonly seq: number;
  readonly lineNo: number;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly deviceType: string;
  readonly publicKey: Buffer;
  readonly csr: Buffer | null;
}

export interface ItemConflict {
  readonly line: number;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly code: 'DUPLICATE_IN_BATCH' | 'CERTIFICATE_EXISTS' | 'DEVICE_FOREIGN' | 'EUI64_OUTSIDE_RANGE';
  /** For duplicates: the line that came first. */
  readonly firstLine?: number;
}

const BATCH_COLUMNS = `id, manufacturer_id, idempotency_key, manifest_sha256, profile, status, device_count, item_count, chunk_count,
  chunk_size, skipped_lines, skip_report, signed, created_at, started_at, completed_at, request_id`;

function toBatch(r: Record<string, unknown>): BatchRecord {
  return {
    id: r.id as string,
    manufacturerId: r.manufacturer_id as string,
    idempotencyKey: r.idempotency_key as string,
    manifestSha256: r.manifest_sha256 as Buffer,
    profile: r.profile as string,
    status: r.status as BatchStatus,
    deviceCount: r.device_count as number,
    itemCount: r.item_count as number,
    chunkCount: r.chunk_count as number,
    chunkSize: r.chunk_size as number,
    skippedLines: r.skipped_lines as number,
    skipReport: r.skip_report as unknown[],
    signed: r.signed as boolean,
    createdAt: r.created_at as Date,
    startedAt: r.started_at as Date | null,
    completedAt: r.completed_at as Date | null,
    requestId: r.request_id as string | null,
  };
}

export async function getBatch(db: Queryable, id: string): Promise<BatchRecord | undefined> {
  const { rows } = await db.query(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id = $1`, [id]);
  return rows[0] ? toBatch(rows[0]) : undefined;
}

/** The newest batches first, one manufacturer's or everyone's (null). */
export async function listBatches(db: Queryable, options: { manufacturerId: string | null; limit: number }): Promise<BatchRecord[]> {
  const { rows } = await db.query(`SELECT ${BATCH_COLUMNS} FROM batches WHERE ($1::text IS NULL OR manufacturer_id = $1) ORDER BY created_at DESC LIMIT $2`, [options.manufacturerId, options.limit]);
  return rows.map(toBatch);
}

export async function findBatchByIdempotencyKey(db: Queryable, manufacturerId: string, key: string): Promise<BatchRecord | undefined> {
  const { rows } = await db.query(`SELECT ${BATCH_COLUMNS} FROM batches WHERE manufacturer_id = $1 AND idempotency_key = $2`, [manufacturerId, key]);
  return rows[0] ? toBatch(rows[0]) : undefined;
}

export async function getManufacturerManifestKey(db: Queryable, manufacturerId: string): Promise<Buffer | null> {
  const { rows } = await db.query<{ manifest_key: Buffer | null }>('SELECT manifest_key FROM manufacturers WHERE id = $1', [manufacturerId]);
  return rows[0]?.manifest_key ?? null;
}

export async function setManufacturerManifestKey(db: Queryable, manufacturerId: string, spki: Buffer): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE manufacturers SET manifest_key = $2 WHERE id = $1', [manufacturerId, spki]);
  return rowCount === 1;
}

/** Opens the batch row inside the upload's transaction, so items can reference it; finalised later. */
export async function insertBatchDraft(client: PoolClient, batch: { id: string; manufacturerId: string; idempotencyKey: string; profile: string; chunkSize: number; createdBy: string }): Promise<void> {
  await client.query(
    `INSERT INTO batches (id, manufacturer_id, idempotency_key, manifest_sha256, profile, status, device_count, chunk_count, chunk_size, created_by, request_id)
     VALUES ($1, $2, $3, '\\x0000000000000000000000000000000000000000000000000000000000000000', $4, 'accepted', 0, 0, $5, $6, $7)`,
    // The upload's request (packages/core request-context), which its chunks' work carries on.
    [batch.id, batch.manufacturerId, batch.idempotencyKey, batch.profile, batch.chunkSize, batch.createdBy, currentRequestId() ?? null],
  );
}

const ITEM_COLUMNS = ['batch_id', 'seq', 'line_no', 'eui64', 'key_role', 'device_type', 'public_key', 'csr'] as const;

/** Streams key lines into the batch with COPY, in the caller's transaction. */
export async function copyBatchItems(client: PoolClient, batchId: string, items: AsyncIterable<BatchItemRow>): Promise<void> {
  async function* rows(): AsyncGenerator<readonly CopyValue[]> {
    for await (const i of items) yield [batchId, i.seq, i.lineNo, i.eui64, i.keyRole, i.deviceType, i.publicKey, i.csr];
  }
  await copyRows(client, 'batch_items', ITEM_COLUMNS, rows());
}

/**
 * Lines that cannot be issued: a (device, role) twice in the batch, one that already has a live
 * certificate or is waiting in another unfinished batch, or a device registered to another manufacturer.
 * Ordered by line; at most `limit`.
 */
export async function findItemConflicts(client: PoolClient, batchId: string, manufacturerId: string, profile: string, limit: number): Promise<ItemConflict[]> {
  const { rows } = await client.query<{ line_no: number; eui64: Buffer; key_role: string; code: ItemConflict['code']; first_line: number | null }>(
    `WITH mine AS (SELECT line_no, eui64, key_role, min(line_no) OVER (PARTITION BY eui64, key_role) AS first_line FROM batch_items WHERE batch_id = $1)
     SELECT * FROM (
       SELECT line_no, eui64, key_role, 'DUPLICATE_IN_BATCH' AS code, first_line FROM mine WHERE line_no > first_line
       UNION ALL
       SELECT m.line_no, m.eui64, m.key_role, 'CERTIFICATE_EXISTS', NULL FROM mine m
        WHERE m.line_no = m.first_line AND (
          EXISTS (SELECT 1 FROM issuance_intents i WHERE i.eui64 = m.eui64 AND i.key_role = m.key_role AND i.profile = $3 AND i.active)
          OR EXISTS (SELECT 1 FROM batch_items o JOIN batches b ON b.id = o.batch_id
                      WHERE o.eui64 = m.eui64 AND o.key_role = m.key_role AND o.batch_id <> $1 AND b.profile = $3
                        AND b.status IN ('accepted', 'issuing') AND o.error_code IS NULL))
       UNION ALL
       SELECT m.line_no, m.eui64, m.key_role, 'EUI64_OUTSIDE_RANGE', NULL FROM mine m
        WHERE m.line_no = m.first_line AND NOT fp_eui64_in_ranges($2, m.eui64)
       UNION ALL
       SELECT m.line_no, m.eui64, m.key_role, 'DEVICE_FOREIGN', NULL FROM mine m JOIN devices d ON d.eui64 = m.eui64 AND d.manufacturer_id <> $2
        WHERE m.line_no = m.first_line AND fp_eui64_in_ranges($2, m.eui64)
     ) c ORDER BY line_no LIMIT $4`,
    [batchId, manufacturerId, profile, limit],
  );
  return rows.map((r) => ({ line: r.line_no, eui64: r.eui64, keyRole: r.key_role, code: r.code, ...(r.first_line !== null ? { firstLine: r.first_line } : {}) }));
}

/** Removes the given lines from a batch (the "skip invalid lines" upload option). */
export async function deleteBatchLines(client: PoolClient, batchId: string, lines: readonly number[]): Promise<void> {
  if (lines.length === 0) return;
  await client.query('DELETE FROM batch_items WHERE batch_id = $1 AND line_no = ANY($2::int[])', [batchId, lines]);
}

/** Cuts the batch into chunks (seq / chunk_size), fills in its counts and opens it for the workers. */
export async function finaliseBatch(
  client: PoolClient,
  batch: { id: string; manifestSha256: Buffer; idempotencyKey: string; skipReport: unknown[]; skippedLines: number; signed: boolean; site: 'a' | 'b'; actor: string },
): Promise<BatchRecord> {
  await client.query(
    `INSERT INTO batch_chunks (batch_id, chunk_no, device_count)
     SELECT $1, i.seq / b.chunk_size, count(*) FROM batch_items i JOIN batches b ON b.id = i.batch_id WHERE i.batch_id = $1 GROUP BY 2`,
    [batch.id],
  );
  const { rows } = await client.query(
    `UPDATE batches b SET manifest_sha256 = $2, idempotency_key = $3, skip_report = $4, skipped_lines = $5, signed = $6, status = 'issuing', started_at = now(),
            item_count = c.items, device_count = c.devices, chunk_count = c.chunks
       FROM (SELECT count(*) AS items, count(DISTINCT eui64) AS devices, count(DISTINCT seq / (SELECT chunk_size FROM batches WHERE id = $1)) AS chunks
               FROM batch_items WHERE batch_id = $1) c
      WHERE b.id = $1
      RETURNING ${BATCH_COLUMNS.split(',').map((c) => `b.${c.trim()}`).join(', ')}`,
    [batch.id, batch.manifestSha256, batch.idempotencyKey, JSON.stringify(batch.skipReport), batch.skippedLines, batch.signed],
  );
  const record = toBatch(rows[0]!);
  await appendAuditEvents(client, [
    { site: batch.site, actor: batch.actor, action: 'batch.accept', subject: batch.id, details: { manufacturerId: record.manufacturerId, items: record.itemCount, devices: record.deviceCount, chunks: record.chunkCount, skippedLines: batch.skippedLines, manifestSha256: batch.manifestSha256.toString('hex'), signed: batch.signed } },
  ]);
  return record;
}

export async function readBatchProgress(db: Queryable, batchId: string, errorLimit = 20): Promise<BatchProgress> {
  const { rows } = await db.query<{ done: number; issued: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE state = 'done')::int AS done, coalesce(sum(issued_count), 0)::int AS issued, coalesce(sum(failed_count), 0)::int AS failed
       FROM batch_chunks WHERE batch_id = $1`,
    [batchId],
  );
  const errors = await db.query<{ line_no: number; eui64: Buffer; key_role: string; error_code: string }>(
    'SELECT line_no, eui64, key_role, error_code FROM batch_items WHERE batch_id = $1 AND error_code IS NOT NULL ORDER BY seq LIMIT $2',
    [batchId, errorLimit],
  );
  return {
    chunksDone: rows[0]!.done,
    issued: rows[0]!.issued,
    failed: rows[0]!.failed,
    errors: errors.rows.map((e) => ({ line: e.line_no, eui64: e.eui64, keyRole: e.key_role, code: e.error_code })),
  };
}

export async function listUnfinishedChunks(db: Queryable, limit: number): Promise<{ batchId: string; chunkNo: number }[]> {
  const { rows } = await db.query<{ batch_id: string; chunk_no: number }>(
    `SELECT c.batch_id, c.chunk_no FROM batch_chunks c JOIN batches b ON b.id = c.batch_id
      WHERE c.state <> 'done' AND b.status = 'issuing' ORDER BY b.created_at, c.chunk_no LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({ batchId: r.batch_id, chunkNo: r.chunk_no }));
}

/** The work of one chunk: its items, with the intent each already has (a chunk retried after a crash). */
export interface ChunkWork {
  readonly batch: BatchRecord;
  readonly done: boolean;
  readonly items: readonly (BatchItemRow & { errorCode: string | null; intent: { serial: Buffer; notBefore: Date; tbsSha256: Buffer } | null })[];
}

export async function loadChunkWork(db: Queryable, batchId: string, chunkNo: number): Promise<ChunkWork | undefined> {
  const batch = await getBatch(db, batchId);
  if (!batch) return undefined;
  const chunk = await db.query<{ state: string }>('SELECT state FROM batch_chunks WHERE batch_id = $1 AND chunk_no = $2', [batchId, chunkNo]);
  if (!chunk.rows[0]) return undefined;
  const { rows } = await db.query<{
    seq: number;
    line_no: number;
    eui64: Buffer;
    key_role: string;
    device_type: string;
    public_key: Buffer;
    csr: Buffer | null;
    error_code: string | null;
    serial: Buffer | null;
    not_before: Date | null;
    tbs_sha256: Buffer | null;
  }>(
    `SELECT i.seq, i.line_no, i.eui64, i.key_role, i.device_type, i.public_key, i.csr, i.error_code, n.serial, n.not_before, n.tbs_sha256
       FROM batch_items i
       LEFT JOIN issuance_intents n ON n.batch_id = i.batch_id AND n.chunk_no = $3 AND n.eui64 = i.eui64 AND n.key_role = i.key_role AND n.active
      WHERE i.batch_id = $1 AND i.seq >= $2::int * $4::int AND i.seq < ($2::int + 1) * $4::int
      ORDER BY i.seq`,
    [batchId, chunkNo, chunkNo, batch.chunkSize],
  );
  return {
    batch,
    done: chunk.rows[0].state === 'done',
    items: rows.map((r) => ({
      seq: r.seq,
      lineNo: r.line_no,
      eui64: r.eui64,
      keyRole: r.key_role,
      deviceType: r.device_type,
      publicKey: r.public_key,
      csr: r.csr,
      errorCode: r.error_code,
      intent: r.serial ? { serial: r.serial, notBefore: r.not_before!, tbsSha256: r.tbs_sha256! } : null,
    })),
  };
}

export interface ChunkIntent {
  readonly seq: number;
  readonly serial: Buffer;
  readonly caId: string;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly deviceType: string;
  readonly notBefore: Date;
  readonly tbsSha256: Buffer;
}

/**
 * Commits a chunk's intents before its certificates are signed, and the items the worker refused. An
 * intent that loses to an existing live one (the device was enrolled another way meanwhile) marks its
 * item CERTIFICATE_EXISTS; one refused because the device is not the manufacturer's (intake checked,
 * but a range may be gone or the device claimed since) EUI64_OUTSIDE_RANGE or DEVICE_FOREIGN. Returns
 * the seqs whose intents are now recorded for this chunk.
 */
export async function recordChunkIntents(
  pool: Pool,
  ctx: { batchId: string; chunkNo: number; manufacturerId: string; profile: string; site: 'a' | 'b'; actor: string },
  intents: readonly ChunkIntent[],
  refused: readonly { seq: number; code: string }[],
): Promise<Set<number>> {
  return withTransaction(pool, async (client) => {
    if (refused.length > 0) {
      await client.query('UPDATE batch_items SET error_code = t.code FROM unnest($2::int[], $3::text[]) AS t(seq, code) WHERE batch_id = $1 AND batch_items.seq = t.seq', [
        ctx.batchId,
        refused.map((r) => r.seq),
        refused.map((r) => r.code),
      ]);
    }
    if (intents.length === 0) return new Set();
    const recorded = await recordIntents(
      client,
      ctx.site,
      intents.map((i) => ({ ...i, profile: ctx.profile, manufacturerId: ctx.manufacturerId, actor: ctx.actor })),
      { batchId: ctx.batchId, chunkNo: ctx.chunkNo },
    );
    const lost = intents.filter((i) => !recorded.has(i.serial.toString('hex')));
    if (lost.length > 0) {
      // Lost to a live intent of another batch or an online enrolment; a concurrent retry of this same
      // chunk is not a loss (its intent has this chunk's batch_id and chunk_no).
      await client.query(
        `UPDATE batch_items b SET error_code = CASE WHEN NOT fp_eui64_in_ranges($4, b.eui64) THEN 'EUI64_OUTSIDE_RANGE'
                                                    WHEN (SELECT d.manufacturer_id FROM devices d WHERE d.eui64 = b.eui64) <> $4 THEN 'DEVICE_FOREIGN'
                                                    ELSE 'CERTIFICATE_EXISTS' END
           FROM unnest($2::int[]) AS t(seq)
          WHERE b.batch_id = $1 AND b.seq = t.seq
            AND NOT EXISTS (SELECT 1 FROM issuance_intents n WHERE n.eui64 = b.eui64 AND n.key_role = b.key_role AND n.active AND n.batch_id = $1 AND n.chunk_no = $3)`,
        [ctx.batchId, lost.map((l) => l.seq), ctx.chunkNo, ctx.manufacturerId],
      );
    }
    await appendAuditEvents(client, [
      { site: ctx.site, actor: ctx.actor, action: 'batch.chunk.intents', subject: `${ctx.batchId}/${ctx.chunkNo}`, details: { recorded: recorded.size, refused: refused.length, lost: lost.length } },
    ]);
    return new Set(intents.filter((i) => recorded.has(i.serial.toString('hex'))).map((i) => i.seq));
  });
}

export interface ChunkCertificate {
  readonly serial: Buffer;
  readonly caId: string;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly der: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly crlShard: number;
}

/**
 * Stores a chunk's certificates (COPY) and marks it done, once: the chunk row is locked, so two workers
 * finishing the same chunk (a job re-queued after Redis was lost) store it once. Closes the batch when its
 * last chunk is done. Returns false when another worker had already finished the chunk.
 */
/**
 * Marks complete the issuing batches (one, or all) whose chunks are all done. Run after a chunk's commit,
 * not inside it: two last chunks committing at once would each see the other's as not done yet, and
 * the batch would stay open; after its own commit, the last chunk to commit sees them all. The
 * reconciler runs it for every batch too (a worker that dies between its commit and this).
 */
export async function completeFinishedBatches(db: Queryable, batchId?: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE batches b SET status = 'complete', completed_at = now()
      WHERE b.status = 'issuing' AND ($1::uuid IS NULL OR b.id = $1)
        AND NOT EXISTS (SELECT 1 FROM batch_chunks c WHERE c.batch_id = b.id AND c.state <> 'done')`,
    [batchId ?? null],
  );
  return rowCount ?? 0;
}

export async function completeChunk(
  pool: Pool,
  ctx: { batchId: string; chunkNo: number; chunkSize: number; profile: string; site: 'a' | 'b'; actor: string },
  certificates: readonly ChunkCertificate[],
): Promise<boolean> {
  const stored = await withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ state: string }>('SELECT state FROM batch_chunks WHERE batch_id = $1 AND chunk_no = $2 FOR UPDATE', [ctx.batchId, ctx.chunkNo]);
    if (rows[0]?.state !== 'pending') return false;
    await copyRows(
      client,
      'certificates',
      ['serial', 'ca_id', 'eui64', 'key_role', 'profile', 'der', 'not_before', 'not_after', 'crl_shard', 'batch_id'],
      certificates.map((c) => [c.serial, c.caId, c.eui64, c.keyRole, ctx.profile, c.der, c.notBefore, c.notAfter, c.crlShard, ctx.batchId]),
    );
    const failed = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM batch_items WHERE batch_id = $1 AND seq >= $2::int * $3::int AND seq < ($2::int + 1) * $3::int AND error_code IS NOT NULL',
      [ctx.batchId, ctx.chunkNo, ctx.chunkSize],
    );
    await client.query(
      `UPDATE batch_chunks SET state = 'done', done_by_site = $3, completed_at = now(), attempts = attempts + 1, issued_count = $4, failed_count = $5, last_error = NULL
        WHERE batch_id = $1 AND chunk_no = $2`,
      [ctx.batchId, ctx.chunkNo, ctx.site, certificates.length, failed.rows[0]!.n],
    );
    // No count on the batch's row: chunks of one batch finish in parallel (readBatchProgress sums them).
    await appendAuditEvents(client, [
      {
        site: ctx.site,
        actor: ctx.actor,
        action: 'batch.chunk.issued',
        subject: `${ctx.batchId}/${ctx.chunkNo}`,
        details: { certificates: certificates.length, serials: certificates.map((c) => c.serial.toString('hex')) },
      },
    ]);
    return true;
  });
  if (stored) await completeFinishedBatches(pool, ctx.batchId);
  return stored;
}

/** Records a chunk attempt that failed (the job will be retried); the message is for operators. */
export async function noteChunkError(db: Queryable, batchId: string, chunkNo: number, message: string): Promise<void> {
  await db.query('UPDATE batch_chunks SET attempts = attempts + 1, last_error = $3 WHERE batch_id = $1 AND chunk_no = $2', [batchId, chunkNo, message.slice(0, 500)]);
}

export interface BatchResultRow {
  readonly seq: number;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly serial: Buffer;
  readonly der: Buffer;
}

/**
 * Where a batch's results are final: every item below the returned seq is in a finished chunk.
 * Chunks finish out of order (several workers), so a reader that went past an unfinished chunk and
 * resumed from its cursor would never see that chunk's certificates; results are read below this.
 */
export async function batchFinishedPrefix(db: Queryable, batchId: string): Promise<number> {
  const { rows } = await db.query<{ below: number }>(
    `SELECT coalesce((SELECT min(c.chunk_no) FROM batch_chunks c WHERE c.batch_id = b.id AND c.state <> 'done') * b.chunk_size, b.item_count)::int AS below
       FROM batches b WHERE b.id = $1`,
    [batchId],
  );
  return rows[0]?.below ?? 0;
}

/**
 * One page of a batch's certificates after `afterSeq` and below `belowSeq` (keyset pagination: the
 * cursor is a seq). Written as lateral lookups so that a page costs its own rows: as a plain join the
 * planner hashed every remaining item of the batch for each page (EXPLAIN ANALYZE, a 20,000-device
 * batch: 240 ms a page, growing with the batch; this form: 56 ms, flat).
 */
export async function readBatchResults(db: Queryable, batchId: string, afterSeq: number, limit: number, belowSeq = 2 ** 31 - 1): Promise<BatchResultRow[]> {
  const { rows } = await db.query<{ seq: number; eui64: Buffer; key_role: string; serial: Buffer; der: Buffer }>(
    `SELECT i.seq, i.eui64, i.key_role, c.serial, c.der
       FROM batch_items i
       CROSS JOIN LATERAL (SELECT n.serial FROM issuance_intents n
                            WHERE n.eui64 = i.eui64 AND n.key_role = i.key_role AND n.active AND n.batch_id = i.batch_id LIMIT 1) n
       CROSS JOIN LATERAL (SELECT c.serial, c.der FROM certificates c WHERE c.serial = n.serial) c
      WHERE i.batch_id = $1 AND i.seq > $2 AND i.seq < $4
      ORDER BY i.seq LIMIT $3`,
    [batchId, afterSeq, limit, belowSeq],
  );
  return rows.map((r) => ({ seq: r.seq, eui64: r.eui64, keyRole: r.key_role, serial: r.serial, der: r.der }));
}

/** The devices of a batch with at least one issued certificate, in EUI-64 order, a page after `after`. */
export async function listBatchDevices(db: Queryable, batchId: string, after: Buffer | null, limit: number): Promise<Buffer[]> {
  const { rows } = await db.query<{ eui64: Buffer }>(
    `SELECT DISTINCT c.eui64 FROM certificates c WHERE c.batch_id = $1 AND ($2::bytea IS NULL OR c.eui64 > $2) ORDER BY c.eui64 LIMIT $3`,
    [batchId, after, limit],
  );
  return rows.map((r) => r.eui64);
}

/**
 * Certificates issued over time, from the chunks' completion times (one row per chunk, so cheap at any
 * batch size): cumulative counts at up to `points` moments, for a throughput chart.
 */
export async function batchIssueSeries(db: Queryable, batchId: string, points = 60): Promise<{ at: Date; issued: number }[]> {
  const { rows } = await db.query<{ completed_at: Date; issued: number }>(
    `SELECT completed_at, sum(issued_count) OVER (ORDER BY completed_at, chunk_no)::int AS issued
       FROM batch_chunks WHERE batch_id = $1 AND state = 'done' AND completed_at IS NOT NULL ORDER BY completed_at, chunk_no`,
    [batchId],
  );
  if (rows.length <= points) return rows.map((r) => ({ at: r.completed_at, issued: r.issued }));
  // Evenly spaced samples, always ending with the latest.
  const step = (rows.length - 1) / (points - 1);
  return Array.from({ length: points }, (_, i) => rows[Math.round(i * step)]!).map((r) => ({ at: r.completed_at, issued: r.issued }));
}
