import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FleetError, type SiteId } from '@fleetpki/core';
import type { CaRecord } from '@fleetpki/store';
import { ChunkIssuer } from './batch-chunk.js';
import type { IssuingCa } from './issuing-ca.js';
import { batchOutboxReconciler, onlineIntentReconciler } from './reconcilers.js';
import type { BatchOutboxStore, ChunkJobQueue, ChunkStore } from './store.js';

/**
 * Issuance's background jobs over in-memory ports: the batch outbox queues what PostgreSQL says is
 * unfinished and completes finished batches; the intent job releases stale intents; a chunk attempt
 * that fails notes its error on the chunk. Against PostgreSQL and Redis: test/batch.test.ts.
 */
class MemoryOutbox implements BatchOutboxStore {
  unfinished: { batchId: string; chunkNo: number }[] = [];
  completions = 0;
  async listUnfinishedChunks(limit: number) {
    return this.unfinished.slice(0, limit);
  }
  async completeFinishedBatches() {
    this.completions++;
    return 0;
  }
}

class MemoryQueue implements ChunkJobQueue {
  jobs: { batchId: string; chunkNo: number }[] = [];
  down = false;
  async enqueue(jobs: readonly { batchId: string; chunkNo: number }[]) {
    if (this.down) throw new Error('redis is down');
    this.jobs.push(...jobs);
  }
}

describe('batchOutboxReconciler', () => {
  it('queues every unfinished chunk, then completes finished batches; a full page is no backlog (the same page comes back until workers finish it)', async () => {
    const store = new MemoryOutbox();
    const queue = new MemoryQueue();
    store.unfinished = [0, 1, 2].map((chunkNo) => ({ batchId: 'b', chunkNo }));
    const job = batchOutboxReconciler({ store, queue }, { limit: 3, everyMs: 250 });
    assert.equal(job.name, 'batch-outbox');
    assert.equal(job.everyMs, 250);
    assert.equal(await job.pass(), false, 'a full page: paced, not run again at once');
    assert.deepEqual(queue.jobs, store.unfinished);
    assert.equal(store.completions, 1);
    store.unfinished = [{ batchId: 'b', chunkNo: 2 }];
    assert.equal(await job.pass(), false);
    assert.equal(store.completions, 2);
  });

  it('a pass with the queue down fails as a whole (the next pass queues the same chunks again)', async () => {
    const store = new MemoryOutbox();
    const queue = new MemoryQueue();
    store.unfinished = [{ batchId: 'b', chunkNo: 0 }];
    queue.down = true;
    const job = batchOutboxReconciler({ store, queue });
    await assert.rejects(job.pass(), /redis is down/);
    assert.equal(store.completions, 0);
    queue.down = false;
    await job.pass();
    assert.deepEqual(queue.jobs, [{ batchId: 'b', chunkNo: 0 }]);
  });
});

describe('onlineIntentReconciler', () => {
  it('releases stale intents as its actor and says how many, only when some were', async () => {
    const actors: string[] = [];
    let next = 2;
    const told: number[] = [];
    const job = onlineIntentReconciler(
      {
        releaseStaleIntents: async (actor: string) => {
          actors.push(actor);
          return next;
        },
      },
      { actor: 'daemons:a', everyMs: 5_000, onReleased: (n) => told.push(n) },
    );
    assert.equal(job.name, 'online-intents');
    assert.equal(job.everyMs, 5_000);
    assert.equal(await job.pass(), false);
    next = 0;
    await job.pass();
    assert.deepEqual(actors, ['daemons:a', 'daemons:a']);
    assert.deepEqual(told, [2]);
  });
});

describe('ChunkIssuer.attempt', () => {
  const ca = { record: { id: 'fpd1' } as CaRecord } as IssuingCa;
  const store = (errors: string[], loads: { n: number }): ChunkStore => ({
    loadChunkWork: async () => {
      loads.n++;
      return undefined;
    },
    recordChunkIntents: () => Promise.reject(new Error('not in this test')),
    completeChunk: () => Promise.reject(new Error('not in this test')),
    noteChunkError: async (batchId, chunkNo, message) => {
      errors.push(`${batchId}/${chunkNo}: ${message}`);
    },
  });

  it('notes a failed attempt on its chunk (code and message) and rethrows it for the queue to retry', async () => {
    const errors: string[] = [];
    const loads = { n: 0 };
    const revoked = { assertActive: async () => Promise.reject(new FleetError('CA_NOT_ACTIVE', 'CA fpd1 is revoked; it issues no more certificates', { httpStatus: 409 })) };
    const issuer = new ChunkIssuer(store(errors, loads), ca, 'a' as SiteId, 0x0a, revoked);
    await assert.rejects(issuer.attempt('b', 3), { code: 'CA_NOT_ACTIVE' });
    assert.deepEqual(errors, ['b/3: CA_NOT_ACTIVE: CA fpd1 is revoked; it issues no more certificates']);
    assert.equal(loads.n, 0, 'a revoked CA does not even load the chunk');
  });

  it("a failure to note the error does not hide the attempt's own error", async () => {
    const loads = { n: 0 };
    const failing: ChunkStore = { ...store([], loads), noteChunkError: () => Promise.reject(new Error('database gone')) };
    const issuer = new ChunkIssuer(failing, ca, 'a' as SiteId, 0x0a, { assertActive: async () => undefined });
    await assert.rejects(issuer.attempt('b', 9), { code: 'CHUNK_NOT_FOUND' });
    assert.equal(loads.n, 1);
  });
});
