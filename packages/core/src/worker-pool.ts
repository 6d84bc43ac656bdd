import type { Transferable, Worker } from 'node:worker_threads';

/** A thread answers each request with the request's id. */
export interface PoolReply {
  readonly id: number;
}

/** A thread that needs time to start (a PKCS#11 login) says when it is ready, or why it cannot be. */
export type PoolHello = { readonly ready: true } | { readonly ready: false; readonly code: string; readonly message: string };

interface Thread<W> {
  readonly worker: Worker;
  readonly inFlight: Map<number, W>;
  /** Takes work: at once, or after its hello when the pool waits for one. */
  ready: boolean;
  /** Has said hello or answered: its exit is a crash, not a failed start. */
  proven: boolean;
}

/** Threads that end before proving themselves this many times in a row: startsFailing() decides. */
const FAILED_STARTS_LIMIT = 3;

/**
 * Worker threads that take work in messages, for the services' CPU-heavy steps (HSM signatures, proofs
 * of possession) that must not run on the JavaScript main thread. One place for what every such pool
 * needs: work asked for in one turn of the event loop goes out together after it; each message goes to
 * the thread with the fewest in flight; a busy thread keeps the process alive and an idle one does not;
 * a thread that dies loses nothing (its messages' work goes back to the front of the queue and a new
 * thread takes it: the work must be repeatable, which signing and checking are); threads that keep dying
 * before they start hand over to startsFailing().
 *
 * A subclass owns the queue of work (W: what one message carries) and the message format.
 */
export abstract class WorkerPool<W, Reply extends PoolReply> {
  private readonly threads: Thread<W>[] = [];
  private nextId = 1;
  private scheduled = false;
  private failedStarts = 0;
  private lastStartError: Error | undefined;
  protected closed = false;

  protected constructor(
    protected readonly size: number,
    private readonly options: {
      /** Messages in flight per thread at most (back-pressure keeps work in the queue, where it can be reordered). */
      readonly maxInFlight: number;
      /** Whether a thread takes work only once it has posted a PoolHello { ready: true }. */
      readonly waitsForHello: boolean;
    },
  ) {}

  /** Starts one thread. */
  protected abstract startThread(): Worker;
  /** Takes the next message's work off the queue, or undefined when nothing waits. */
  protected abstract takeWork(): W | undefined;
  /** The message that carries `work`, and what it transfers. */
  protected abstract request(work: W, id: number): { readonly message: unknown; readonly transfer: readonly Transferable[] };
  /** A thread's answer to a message. */
  protected abstract answer(work: W, reply: Reply): void;
  /** Work a thread had in flight when it ended, oldest first: back to the front of the queue. */
  protected abstract requeue(work: readonly W[]): void;
  /** Threads keep ending before they start: what waits must be failed or done otherwise. No thread starts again until fill(). */
  protected abstract startsFailing(cause: Error | undefined): void;
  /** The error to report for a thread that could not start: its hello's reason, or what it threw. */
  protected abstract startError(cause: { readonly code: string; readonly message: string } | Error): Error;

  /** How many threads are running (fault-injection tests). */
  get threadCount(): number {
    return this.threads.length;
  }

  /** Ends a thread at once, whatever it is doing (tests: a thread lost with work in flight). */
  async terminateThreadForFaultInjection(index = 0): Promise<void> {
    await this.threads[index]?.worker.terminate();
  }

  /** Starts threads up to the pool's size; resolves once all of them are ready, rejects if one cannot start. */
  protected fill(): Promise<void> {
    const starting: Promise<void>[] = [];
    while (this.threads.length < this.size) starting.push(this.spawn());
    return Promise.all(starting).then(() => undefined);
  }

  /** Sends what waits after this turn of the event loop, so work asked for together travels together. */
  protected schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  /** Ends every thread; returns the work they had in flight, oldest first, for the subclass to settle. */
  protected async terminateAll(): Promise<W[]> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
    return threads.flatMap((t) => [...t.inFlight.values()]);
  }

  private dispatch(): void {
    for (;;) {
      let thread: Thread<W> | undefined;
      for (const t of this.threads) if (t.ready && t.inFlight.size < this.options.maxInFlight && (!thread || t.inFlight.size < thread.inFlight.size)) thread = t;
      if (!thread) return;
      const work = this.takeWork();
      if (work === undefined) return;
      const id = this.nextId++;
      const { message, transfer } = this.request(work, id);
      thread.inFlight.set(id, work);
      // A thread at work keeps the process alive (a script awaiting a signature); an idle one does not.
      thread.worker.ref();
      thread.worker.postMessage(message, transfer);
    }
  }

  private spawn(): Promise<void> {
    const worker = this.startThread();
    worker.unref();
    const thread: Thread<W> = { worker, inFlight: new Map(), ready: !this.options.waitsForHello, proven: false };
    this.threads.push(thread);
    return new Promise<void>((resolve, reject) => {
      if (thread.ready) resolve();
      worker.on('message', (message: Reply | PoolHello) => {
        if ('ready' in message) {
          if (message.ready) {
            thread.ready = thread.proven = true;
            this.failedStarts = 0;
            resolve();
            this.dispatch();
          } else {
            this.lastStartError = this.startError({ code: message.code, message: message.message });
            reject(this.lastStartError);
            void worker.terminate();
          }
          return;
        }
        this.onReply(thread, message);
      });
      worker.on('error', (err) => {
        if (thread.proven) return;
        this.lastStartError = this.startError(err);
        reject(this.lastStartError);
      });
      worker.on('exit', () => this.onExit(thread));
    });
  }

  private onReply(thread: Thread<W>, reply: Reply): void {
    const work = thread.inFlight.get(reply.id);
    if (work === undefined) return;
    thread.inFlight.delete(reply.id);
    thread.proven = true;
    this.failedStarts = 0;
    if (thread.inFlight.size === 0) thread.worker.unref();
    this.answer(work, reply);
    this.dispatch();
  }

  private onExit(thread: Thread<W>): void {
    const at = this.threads.indexOf(thread);
    if (at < 0) return;
    this.threads.splice(at, 1);
    const lost = [...thread.inFlight.values()];
    thread.inFlight.clear();
    this.requeue(lost);
    if (this.closed) return;
    if (!thread.proven && ++this.failedStarts >= FAILED_STARTS_LIMIT) {
      this.failedStarts = 0;
      this.startsFailing(this.lastStartError);
      return;
    }
    this.fill().catch(() => undefined);
    this.dispatch();
  }
}
