import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetError, parseEui64 } from '@fleetpki/core';
import type { BatchProgress, BatchRecord, BatchResultRow, StoredCertificate } from '@fleetpki/store';
import { BatchReads } from './batch-reads.js';
import { CertificateReads } from './certificate-reads.js';
import type { BatchReadStore, CertificateReadStore } from './store.js';

/**
 * The batch and certificate reads behind the API's GET routes, over in-memory stores: who sees what,
 * the progress figures, and results read in pages below the finished prefix with a resumable end cursor.
 * The SQL behind the ports is covered by test/batch-results.test.ts and test/batch.test.ts.
 */
const ID = '8d3c9a4e-1b2f-4c5d-9e6f-0a1b2c3d4e5f';

function batch(over: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: ID,
    manufacturerId: 'acme',
    idempotencyKey: 'k',
    manifestSha256: Buffer.alloc(32, 1),
    profile: 'smart-meter',
    status: 'issuing',
    deviceCount: 5,
    itemCount: 10,
    chunkCount: 5,
    chunkSize: 2,
    skippedLines: 0,
    skipReport: [],
    signed: false,
    createdAt: new Date('2026-01-01T00:00:00Z'),
    startedAt: new Date('2026-01-01T00:00:00Z'),
    completedAt: null,
    ...over,
  };
}

function row(seq: number): BatchResultRow {
  return { seq, eui64: Buffer.from(`00112233445566${seq.toString(16).padStart(2, '0')}`, 'hex'), keyRole: 'digitalSignature', serial: Buffer.from([seq]), der: Buffer.from([0x30, seq]) };
}

/** A batch of ten items whose seqs 0-5 are in finished chunks (`below` 6); seq 3 was refused. */
class MemoryBatchReads implements BatchReadStore {
  record = batch();
  below = 6;
  pages: { after: number; limit: number; below: number }[] = [];
  progress: BatchProgress = { chunksDone: 3, issued: 5, failed: 1, errors: [{ line: 4, eui64: Buffer.from('0011223344556603', 'hex'), keyRole: 'digitalSignature', code: 'CSR_SIGNATURE_INVALID' }] };
  devices = [1, 2, 3, 4, 5].map((n) => Buffer.from([0, 0, 0, 0, 0, 0, 0, n]));

  async getBatch(id: string) {
    return id === this.record.id ? this.record : undefined;
  }
  async listBatches(options: { manufacturerId: string | null; limit: number }) {
    return [this.record].filter((b) => options.manufacturerId === null || b.manufacturerId === options.manufacturerId).slice(0, options.limit);
  }
  async readBatchProgress() {
    return this.progress;
  }
  async batchIssueSeries() {
    return [{ at: new Date('2026-01-01T00:00:05Z'), issued: 5 }];
  }
  async batchFinishedPrefix() {
    return this.below;
  }
  async readBatchResults(_id: string, after: number, limit: number, below: number) {
    this.pages.push({ after, limit, below });
    return [0, 1, 2, 4, 5, 6, 7].filter((s) => s > after && s < below).slice(0, limit).map(row);
  }
  async listBatchDevices(_id: string, after: Buffer | null, limit: number) {
    return this.devices.filter((d) => after === null || Buffer.compare(d, after) > 0).slice(0, limit);
  }
}

async function collect<T>(parts: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const p of parts) out.push(p);
  return out;
}

describe('BatchReads', () => {
  it('finds a batch only for who may see it, and a malformed id is simply not found', async () => {
    const reads = new BatchReads(new MemoryBatchReads());
    assert.equal((await reads.find(ID, (m) => m === 'acme')).id, ID);
    await assert.rejects(reads.find(ID, (m) => m === 'other'), (err: unknown) => isFleetError(err, 'BATCH_NOT_FOUND') && err.httpStatus === 404);
    await assert.rejects(reads.find('not-a-uuid', () => true), (err: unknown) => isFleetError(err, 'BATCH_NOT_FOUND') && err.message === 'no batch not-a-uuid');
    await assert.rejects(reads.find('9d3c9a4e-1b2f-4c5d-9e6f-0a1b2c3d4e5f', () => true), (err: unknown) => isFleetError(err, 'BATCH_NOT_FOUND'));
  });

  it('describes progress: counts, refused items with their EUI-64, rate and ETA; a complete batch has ETA 0', async () => {
    const store = new MemoryBatchReads();
    const reads = new BatchReads(store);
    const completedAt = new Date('2026-01-01T00:00:03Z');
    const view = await reads.describe(batch({ completedAt }));
    assert.equal(view.issued, 5);
    assert.equal(view.failed, 1);
    assert.deepEqual(view.chunks, { total: 5, done: 3, size: 2 });
    assert.deepEqual(view.errors, [{ line: 4, eui64: '0011223344556603', keyRole: 'digitalSignature', code: 'CSR_SIGNATURE_INVALID' }]);
    // 6 finished in 3 s: 2 a second, 4 remaining.
    assert.equal(view.certificatesPerSecond, 2);
    assert.equal(view.etaSeconds, 2);
    assert.equal(view.completedAt, completedAt.toISOString());
    assert.deepEqual(view.issuedOverTime, [{ at: '2026-01-01T00:00:05.000Z', issued: 5 }]);
    assert.equal((await reads.describe(batch({ status: 'complete', completedAt }))).etaSeconds, 0);
    assert.equal((await reads.describe(batch({ startedAt: null }))).etaSeconds, null);
  });

  it('lists batches in the listing shape, filtered by manufacturer', async () => {
    const reads = new BatchReads(new MemoryBatchReads());
    assert.deepEqual(await reads.list({ manufacturerId: 'acme', limit: 5 }), [{ id: ID, manufacturer: 'acme', status: 'issuing', profile: 'smart-meter', devices: 5, certificatesRequested: 10, createdAt: '2026-01-01T00:00:00.000Z', completedAt: null }]);
    assert.deepEqual(await reads.list({ manufacturerId: 'other', limit: 5 }), []);
  });

  it('reads results in pages below the finished prefix; the end cursor passes refused items at its edge', async () => {
    const store = new MemoryBatchReads();
    const parts = await collect(new BatchReads(store).results(ID, -1, 2));
    assert.deepEqual(
      parts.map((p) => ('page' in p ? p.page.map((r) => r.seq) : p.end)),
      [[0, 1], [2, 4], [5], { cursor: 5, complete: false }],
    );
    assert.ok(store.pages.every((p) => p.below === 6));
    // Resumed after the last certificate: nothing more yet, and the cursor stays put.
    assert.deepEqual(await collect(new BatchReads(store).results(ID, 5)), [{ end: { cursor: 5, complete: false } }]);
    // Seqs 6 and 7 were refused and their chunk finished: the end moves past them.
    store.below = 10;
    store.record = batch({ status: 'complete' });
    const resumed = await collect(new BatchReads(store).results(ID, 7));
    assert.deepEqual(resumed, [{ end: { cursor: 9, complete: true } }]);
  });

  it('hands out the devices with certificates a page at a time', async () => {
    const pages = await collect(new BatchReads(new MemoryBatchReads()).devicePages(ID, 2));
    assert.deepEqual(pages.map((p) => p.map((d) => d[7])), [[1, 2], [3, 4], [5]]);
  });
});

describe('CertificateReads', () => {
  const stored = (manufacturerId: string, serial: number): StoredCertificate => ({
    serial: Buffer.from([serial]),
    caId: 'fpd1',
    eui64: Buffer.from('0011223344556677', 'hex'),
    keyRole: 'digitalSignature',
    profile: 'smart-meter',
    der: Buffer.from([0x30]),
    notBefore: new Date(),
    notAfter: new Date(),
    crlShard: 0,
    batchId: null,
    issuedAt: new Date(),
    manufacturerId,
    revocation: null,
  });
  const store: CertificateReadStore = {
    getCertificate: async (serial) => (serial[0] === 1 ? stored('acme', 1) : undefined),
    listDeviceCertificates: async (eui64) => (eui64.toString('hex') === '0011223344556677' ? [stored('acme', 1), stored('other', 2)] : []),
  };

  it('a certificate by serial, only for who may see its manufacturer', async () => {
    const reads = new CertificateReads(store);
    assert.equal((await reads.get(Buffer.from([1]), () => true)).manufacturerId, 'acme');
    await assert.rejects(reads.get(Buffer.from([1]), (m) => m === 'other'), (err: unknown) => isFleetError(err, 'CERTIFICATE_NOT_FOUND') && err.message === 'no certificate with serial 01');
    await assert.rejects(reads.get(Buffer.from([2]), () => true), (err: unknown) => isFleetError(err, 'CERTIFICATE_NOT_FOUND'));
  });

  it("a device's certificates, filtered; none visible is DEVICE_NOT_FOUND", async () => {
    const reads = new CertificateReads(store);
    const eui64 = parseEui64('00-11-22-33-44-55-66-77');
    assert.deepEqual((await reads.forDevice(eui64, (m) => m === 'acme')).map((c) => c.serial[0]), [1]);
    await assert.rejects(reads.forDevice(eui64, (m) => m === 'nobody'), (err: unknown) => isFleetError(err, 'DEVICE_NOT_FOUND') && err.httpStatus === 404);
  });
});
