import { Queue, Worker, type Job } from 'bullmq';
import { createRedisConnection, type RedisConnection } from './connection.js';
import type { RedisLink } from './redis-link.js';

/** One chunk of a factory batch: the unit of work (and of retry) of the batch pipeline. */
export interface ChunkJob {
  readonly batchId: string;
  readonly chunkNo: number;
}

export const CHUNK_QUEUE = 'fleetpki-batch-chunks';

/**
 * Redis key prefix of one CA database's work list: chunk jobs name rows of that database, so a worker
 * of another database (the test suite's, a benchmark's) sharing the site's Redis never takes them.
 */
export function queuePrefix(database: string): string {
  return `fleetpki:${database}`;
}

/**
 * The work list of the batch pipeline. Redis holds only this list; PostgreSQL's chunk rows are the
 * truth (the outbox), so the reconciler can always rebuild it. The job id is the chunk's identity, so a
 * chunk already queued or running is not queued twice.
 */
export class ChunkQueue {
  private readonly connection: RedisConnection;
  private readonly queue: Queue<ChunkJob>;

  constructor(redis: string | RedisLink, database: string) {
    this.connection = createRedisConnection(redis);
    this.queue = new Queue<ChunkJob>(CHUNK_QUEUE, {
      connection: this.connection,
      prefix: queuePrefix(database),
      defaultJobOptions: {
        attempts: 5,
        backoff: { type: 'exponential', delay: 500 },
        // Finished jobs leave Redis: the chunk row says done. A job that failed all its attempts leaves
        // too, so the reconciler can queue the chunk again later under the same id.
        removeOnComplete: true,
        removeOnFail: true,
      },
    });
  }

  async enqueue(jobs: readonly ChunkJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.queue.addBulk(jobs.map((data) => ({ name: 'chunk', data, opts: { jobId: chunkJobId(data) } })));
  }

  /** Waiting + active + delayed jobs, for status pages. */
  async backlog(): Promise<number> {
    const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  /** Takes jobs out of the queue (a job queued by hand, by mistake): the chunk rows are not touched. */
  async remove(jobs: readonly ChunkJob[]): Promise<void> {
    for (const job of jobs) await this.queue.remove(chunkJobId(job));
  }

  /** Jobs by state, for metrics. */
  async counts(): Promise<{ waiting: number; active: number; delayed: number; failed: number }> {
    const c = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
    return { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
  }

  /** Batch workers connected to this site's queue now (BullMQ's worker registry in Redis). */
  async workers(): Promise<number> {
    return this.queue.getWorkersCount();
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.connection.disconnect();
  }
}

export function chunkJobId(job: ChunkJob): string {
  // BullMQ refuses ':' in custom job ids.
  return `${job.batchId}.${job.chunkNo}`;
}

export interface ChunkWorker {
  close(): Promise<void>;
}

/** Runs `handle` for chunk jobs, `concurrency` at a time in this process. */
export function startChunkWorker(redis: string | RedisLink, database: string, handle: (job: ChunkJob) => Promise<void>, options: { concurrency: number; onError?: (err: Error, job: ChunkJob | undefined) => void }): ChunkWorker {
  const connection = createRedisConnection(redis);
  const worker = new Worker<ChunkJob>(CHUNK_QUEUE, async (job: Job<ChunkJob>) => handle(job.data), {
    connection,
    prefix: queuePrefix(database),
    concurrency: options.concurrency,
    // A chunk takes well under a second; a worker killed mid-chunk has its job picked up again after this.
    lockDuration: 30_000,
    stalledInterval: 15_000,
  });
  worker.on('failed', (job, err) => options.onError?.(err, job?.data));
  worker.on('error', (err) => options.onError?.(err, undefined));
  return {
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}

/** Removes every key of one database's work list from a site's Redis (throw-away databases of tests). */
export async function dropChunkQueue(target: string | RedisLink, database: string): Promise<void> {
  const redis = createRedisConnection(target);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix(database)}:*`, 'COUNT', 1000);
      if (keys.length) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
