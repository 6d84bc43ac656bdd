import type { DaemonJob } from '@fleetpki/core';
import type { StaleIntentRelease } from './stale-intents.js';
import type { BatchOutboxStore, ChunkJobQueue } from './store.js';

/**
 * Issuance's background jobs, as DaemonJobs: one pass each, safe to run twice at once; the runner owns
 * the timing and the leader check (only the active site's leader passes).
 */

/** Chunks queued by one outbox pass at most. */
export const OUTBOX_PASS_LIMIT = 10_000;

/**
 * The batch outbox: every unfinished chunk in PostgreSQL goes (again) to the queue, and batches whose
 * chunks are all done are marked complete. A lost Redis, a chunk whose first queueing failed, or a
 * killed worker only delays work. Queueing twice is harmless (a chunk's job id is its batch and number).
 * A pass never reports a backlog: the unfinished chunks are read from the start each time (no cursor),
 * so a full page is the same page until workers finish it, and passes back to back would re-queue it
 * hundreds of times a second (an outside review measured 817 passes in 1 s). The pause paces it.
 */
export function batchOutboxReconciler(ports: { readonly store: BatchOutboxStore; readonly queue: ChunkJobQueue }, options: { readonly everyMs?: number; readonly limit?: number } = {}): DaemonJob {
  const limit = options.limit ?? OUTBOX_PASS_LIMIT;
  return {
    name: 'batch-outbox',
    everyMs: options.everyMs ?? 1_000,
    async pass() {
      const chunks = await ports.store.listUnfinishedChunks(limit);
      await ports.queue.enqueue(chunks);
      await ports.store.completeFinishedBatches();
      return false;
    },
  };
}

/**
 * Online intents that never got their certificate are released after the intent timeout, audited, so
 * their devices can enrol again (StaleIntentRelease says which it looks at).
 */
export function onlineIntentReconciler(
  release: Pick<StaleIntentRelease, 'releaseStaleIntents'>,
  options: {
    /** Who the audit rows name, e.g. daemons:a. */
    readonly actor: string;
    readonly everyMs: number;
    /** Told how many a pass released, when any (the service logs it). */
    readonly onReleased?: (released: number) => void;
  },
): DaemonJob {
  return {
    name: 'online-intents',
    everyMs: options.everyMs,
    async pass() {
      const released = await release.releaseStaleIntents(options.actor);
      if (released > 0) options.onReleased?.(released);
      return false;
    },
  };
}
