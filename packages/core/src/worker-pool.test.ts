import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { WorkerPool, type PoolReply } from './worker-pool.js';

interface Job {
  readonly n: number;
  readonly resolve: (doubled: number) => void;
  readonly reject: (err: Error) => void;
}

interface Reply extends PoolReply {
  readonly doubled: number[];
}

/** Doubles numbers on threads; `program` is the thread's code, so a test can make threads that fail. */
class DoublingPool extends WorkerPool<Job[], Reply> {
  readonly queue: Job[] = [];
  startsFailed: Error | undefined | 'not yet' = 'not yet';
  sent = 0;

  constructor(
    private readonly program: string,
    size: number,
    waitsForHello: boolean,
  ) {
    super(size, { maxInFlight: 2, waitsForHello });
  }

  start(): Promise<void> {
    return this.fill();
  }

  double(n: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ n, resolve, reject });
      this.schedule();
    });
  }

  async close(): Promise<Job[]> {
    return (await this.terminateAll()).flat();
  }

  protected startThread(): Worker {
    return new Worker(this.program, { eval: true });
  }

  protected takeWork(): Job[] | undefined {
    return this.queue.length > 0 ? this.queue.splice(0, 10) : undefined;
  }

  protected request(jobs: Job[], id: number): { message: unknown; transfer: [] } {
    this.sent += jobs.length;
    return { message: { id, numbers: jobs.map((j) => j.n) }, transfer: [] };
  }

  protected answer(jobs: Job[], reply: Reply): void {
    jobs.forEach((job, i) => job.resolve(reply.doubled[i]!));
  }

  protected requeue(lost: readonly Job[][]): void {
    this.queue.unshift(...lost.flat());
  }

  protected startsFailing(cause: Error | undefined): void {
    this.startsFailed = cause;
    for (const job of this.queue.splice(0)) job.reject(cause ?? new Error('threads keep failing to start'));
  }

  protected startError(cause: { readonly code: string; readonly message: string } | Error): Error {
    return new Error(cause instanceof Error ? `thread failed: ${cause.message}` : `${cause.code}: ${cause.message}`);
  }
}

const DOUBLER = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, numbers }) => {
  // Slow enough that a thread can be killed with work in flight.
  const until = Date.now() + 2;
  while (Date.now() < until);
  parentPort.postMessage({ id, doubled: numbers.map((n) => n * 2) });
});
`;

describe('worker pool', { timeout: 30_000 }, () => {
  it('answers every job once, in order, even when a thread is killed with work in flight', async () => {
    const pool = new DoublingPool(DOUBLER, 2, false);
    await pool.start();
    const numbers = Array.from({ length: 2_000 }, (_, i) => i);
    let answered = 0;
    const pending = numbers.map((n) => pool.double(n).then((d) => (answered++, d)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(answered < numbers.length, 'the thread is killed while work is in flight');
    await pool.terminateThreadForFaultInjection(0);
    assert.deepEqual(await Promise.all(pending), numbers.map((n) => n * 2));
    assert.ok(pool.sent > numbers.length, 'the killed thread had work in flight, which was sent again');
    assert.equal(pool.threadCount, 2, 'a new thread took the place of the one killed');
    assert.equal(pool.startsFailed, 'not yet');
    assert.deepEqual(await pool.close(), []);
  });

  it('waits for a hello before sending work, and rejects the start with the reason a thread gives', async () => {
    const hello = `setTimeout(() => require('node:worker_threads').parentPort.postMessage({ ready: true }), 200);` + DOUBLER;
    const pool = new DoublingPool(hello, 1, true);
    const answer = pool.double(21);
    await pool.start();
    assert.equal(await answer, 42);
    await pool.close();

    const refusing = new DoublingPool(`require('node:worker_threads').parentPort.postMessage({ ready: false, code: 'TOKEN_GONE', message: 'no token' });`, 1, true);
    await assert.rejects(refusing.start(), /TOKEN_GONE: no token/);
    await refusing.close();
  });

  it('hands over to startsFailing after threads die before their first answer three times in a row, instead of restarting forever', async () => {
    const dying = new DoublingPool(`throw new Error('cannot load')`, 1, false);
    await dying.start();
    const job = dying.double(1);
    await assert.rejects(job, /thread failed: cannot load/);
    assert.ok(dying.startsFailed instanceof Error && /cannot load/.test(dying.startsFailed.message), 'the cause is the last thread error');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(dying.threadCount, 0, 'no thread is started again');
    await dying.close();
  });
});
