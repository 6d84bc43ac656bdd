import type { ChunkStore, EnrolmentStore } from './store.js';

/** What issuance tells a process's metrics (packages/metrics' issuanceMetrics has these). */
export interface IssuanceCounts {
  intentsRecorded(channel: 'online' | 'batch', count: number): void;
  certificatesStored(channel: 'online' | 'batch', count: number): void;
  chunkDone?(certificates: number): void;
}

/**
 * The online enrolment store, counting what it committed: intents recorded and certificates stored,
 * as the store answered (a refused intent or a released one is not counted).
 */
export function countedEnrolmentStore(store: EnrolmentStore, counts: IssuanceCounts): EnrolmentStore {
  // The other calls reach the store itself through the prototype, whether it keeps them as own
  // properties or on a class's prototype.
  return Object.assign(Object.create(store) as EnrolmentStore, {
    async recordIntents(...args: Parameters<EnrolmentStore['recordIntents']>) {
      const recorded = await store.recordIntents(...args);
      counts.intentsRecorded('online', recorded.size);
      return recorded;
    },
    async storeCertificates(...args: Parameters<EnrolmentStore['storeCertificates']>) {
      const released = await store.storeCertificates(...args);
      counts.certificatesStored('online', args[1].length - released.size);
      return released;
    },
  });
}

/** The chunk store, counting intents recorded and certificates stored by the chunks this process completed. */
export function countedChunkStore(store: ChunkStore, counts: IssuanceCounts): ChunkStore {
  return {
    loadChunkWork: (...args) => store.loadChunkWork(...args),
    noteChunkError: (...args) => store.noteChunkError(...args),
    async recordChunkIntents(...args) {
      const recorded = await store.recordChunkIntents(...args);
      counts.intentsRecorded('batch', recorded.size);
      return recorded;
    },
    async completeChunk(...args) {
      const completed = await store.completeChunk(...args);
      // Another attempt completed it first: nothing of this attempt was stored.
      if (completed) {
        counts.certificatesStored('batch', args[1].length);
        counts.chunkDone?.(args[1].length);
      }
      return completed;
    },
  };
}
