import { Worker } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HsmError, type HsmErrorCode } from './errors.js';
import type { KeyRef, Signer } from './key-store.js';
import type { SignatureCheck } from './signature-check.js';
import type { SigningThreadInit, SliceReply, SliceRequest, ThreadMessage } from './signing-thread.js';

interface Item {
  readonly data: Uint8Array;
  readonly verify: boolean;
  readonly resolve: (signature: Buffer) => void;
  readonly reject: (err: Error) => void;
}

interface KeyQueue {
  readonly key: KeyRef;
  readonly publicKeySpki: Buffer;
  readonly items: Item[];
}

interface Slice {
  readonly queue: KeyQueue;
  readonly items: Item[];
}

interface Thread {
  readonly worker: Worker;
  readonly inFlight: Map<number, Slice>;
  ready: boolean;
}

/**
 * The thread's entry. A build runs the emitted JavaScript; sources run through tsx, whose loader a worker
 * thread of Node 20 does not inherit from the process, so the thread registers it before importing.
 */
function threadEntry(): [string, { eval?: boolean }] {
  const entry = fileURLToPath(import.meta.url).replace(/signing-threads\.(ts|js)$/, 'signing-thread.$1');
  if (!entry.endsWith('.ts')) return [entry, {}];
  const tsx = import.meta.resolve('tsx/esm/api');
  return [`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(pathToFileURL(entry).href)}); })`, { eval: true }];
}

/** Up to this many signatures go to a thread in one message; bigger slices cost latency, smaller ones messages. */
const SLICE_MAX = 64;
/** Slices queued per thread: one signing, one waiting, so a thread never waits for the main thread. */
const SLICES_PER_THREAD = 2;
/** Threads that die before they are ready this many times in a row: the pending signatures fail with the cause. */
const FAILED_STARTS_LIMIT = 3;

/**
 * Signing threads for one token: the JavaScript main thread only queues data and hands out slices;
 * hashing, C_SignInit + C_Sign and the signature check (SignatureCheck) run on the threads
 * (signing-thread.ts), one PKCS#11 session each. Signatures asked for in the same turn of the event loop
 * travel together: a batch chunk's become slices, an online enrolment's goes out at once.
 *
 * A thread that dies mid-slice (crash, fault injection) loses nothing: its slices go back to the front
 * of the queue and a new thread takes them. Signing is repeatable (a signature is used only once it is
 * returned, and the certificate does not exist before), so a slice signed twice leaves no trace.
 */
export class SigningThreads {
  private readonly threads: Thread[] = [];
  private readonly queues = new Map<string, KeyQueue>();
  private nextSlice = 1;
  private scheduled = false;
  private closed = false;
  private failedStarts = 0;
  private lastStartError: HsmError | undefined;
  private sampled = 0;

  private constructor(
    private readonly init: SigningThreadInit,
    private readonly size: number,
  ) {}

  /**
   * Starts `threads` signing threads on a token this process has already opened and logged in to, and
   * waits until they are ready: a service is ready only once its signers are (a thread's first start
   * under tsx takes a second or two, too long for the first OCSP request to wait).
   */
  static async start(init: { modulePath: string; tokenLabel: string; pin: string; check: SignatureCheck }, threads: number): Promise<SigningThreads> {
    const pool = new SigningThreads(init, threads);
    try {
      await Promise.all(Array.from({ length: threads }, () => pool.spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** How many threads are running (fault-injection tests). */
  get threadCount(): number {
    return this.threads.length;
  }

  signer(key: KeyRef, publicKeySpki: Buffer): Signer {
    const name = `${key.label}/${key.id?.toString('hex') ?? ''}`;
    let queue = this.queues.get(name);
    if (!queue) this.queues.set(name, (queue = { key, publicKeySpki, items: [] }));
    const q = queue;
    return {
      algorithm: 'ecdsa-p256-sha256',
      publicKeySpki,
      sign: (data: Uint8Array) =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.closed) return reject(new HsmError('HSM_OPERATION_FAILED', `the signing threads of token "${this.init.tokenLabel}" are closed`));
          // One in checkEvery is verified; with every: 1, all of them.
          const verify = this.sampled++ % this.init.check.every === 0;
          q.items.push({ data, verify, resolve, reject });
          if (this.threads.length < this.size) this.fill();
          this.schedule();
        }),
    };
  }

  /** Ends a thread at once, whatever it is doing (tests: a signing thread lost mid-slice). */
  async terminateThreadForFaultInjection(index = 0): Promise<void> {
    const thread = this.threads[index];
    if (thread) await thread.worker.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
    const gone = new HsmError('HSM_OPERATION_FAILED', `the signing threads of token "${this.init.tokenLabel}" were closed`);
    for (const t of threads) for (const slice of t.inFlight.values()) for (const item of slice.items) item.reject(gone);
    for (const q of this.queues.values()) for (const item of q.items.splice(0)) item.reject(gone);
  }

  // Signatures asked for in this turn of the event loop are dispatched together, after it.
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (;;) {
      const queue = [...this.queues.values()].find((q) => q.items.length > 0);
      if (!queue) return;
      const thread = this.idlestThread();
      if (!thread) return;
      this.send(thread, { queue, items: queue.items.splice(0, SLICE_MAX) });
    }
  }

  private idlestThread(): Thread | undefined {
    let best: Thread | undefined;
    for (const t of this.threads) if (t.ready && t.inFlight.size < SLICES_PER_THREAD && (!best || t.inFlight.size < best.inFlight.size)) best = t;
    return best;
  }

  private send(thread: Thread, slice: Slice): void {
    const id = this.nextSlice++;
    let total = 0;
    for (const item of slice.items) total += item.data.length;
    const data = new Uint8Array(total);
    const ends = new Uint32Array(slice.items.length);
    const verify = new Uint8Array(slice.items.length);
    let at = 0;
    slice.items.forEach((item, i) => {
      data.set(item.data, at);
      at += item.data.length;
      ends[i] = at;
      verify[i] = item.verify ? 1 : 0;
    });
    const { key, publicKeySpki } = slice.queue;
    const request: SliceRequest = { slice: id, key: { label: key.label, ...(key.id ? { id: new Uint8Array(key.id) } : {}) }, publicKeySpki: new Uint8Array(publicKeySpki), data, ends, verify };
    thread.inFlight.set(id, slice);
    // A thread at work keeps the process alive (a script awaiting a signature); an idle one does not.
    thread.worker.ref();
    thread.worker.postMessage(request, [data.buffer, ends.buffer, verify.buffer]);
  }

  private onReply(thread: Thread, reply: SliceReply): void {
    const slice = thread.inFlight.get(reply.slice);
    if (!slice) return;
    thread.inFlight.delete(reply.slice);
    if (thread.inFlight.size === 0) thread.worker.unref();
    if (reply.ok) {
      let start = 0;
      slice.items.forEach((item, i) => {
        const end = reply.ends[i]!;
        item.resolve(Buffer.from(reply.signatures.buffer, reply.signatures.byteOffset + start, end - start));
        start = end;
      });
    } else {
      const err = new HsmError(reply.code as HsmErrorCode, reply.message);
      for (const item of slice.items) item.reject(err);
    }
    this.dispatch();
  }

  private spawn(): Promise<void> {
    const worker = (() => {
      const [entry, how] = threadEntry();
      return new Worker(entry, { ...how, workerData: { fleetpkiSigningThread: this.init } });
    })();
    worker.unref();
    const thread: Thread = { worker, inFlight: new Map(), ready: false };
    this.threads.push(thread);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (message: ThreadMessage) => {
        if ('slice' in message) return this.onReply(thread, message);
        if (message.ready) {
          thread.ready = true;
          this.failedStarts = 0;
          resolve();
          this.dispatch();
        } else {
          this.lastStartError = new HsmError(message.code as HsmErrorCode, message.message);
          reject(this.lastStartError);
          void worker.terminate();
        }
      });
      worker.on('error', (err) => {
        if (thread.ready) return;
        this.lastStartError = new HsmError('HSM_OPERATION_FAILED', `a signing thread of token "${this.init.tokenLabel}" failed to start: ${err.message}`, err);
        reject(this.lastStartError);
      });
      worker.on('exit', () => this.onExit(thread));
    });
  }

  /** A thread ended: its slices go back to the front of their queues, and a new thread takes its place. */
  private onExit(thread: Thread): void {
    const at = this.threads.indexOf(thread);
    if (at >= 0) this.threads.splice(at, 1);
    for (const slice of [...thread.inFlight.values()].reverse()) slice.queue.items.unshift(...slice.items);
    thread.inFlight.clear();
    if (this.closed) return;
    if (!thread.ready && ++this.failedStarts >= FAILED_STARTS_LIMIT) {
      // Starting keeps failing (a token gone, a PIN changed): what waits fails with the cause, and no
      // thread starts until the next signature is asked for.
      const err = this.lastStartError ?? new HsmError('HSM_OPERATION_FAILED', `signing threads of token "${this.init.tokenLabel}" keep failing to start`);
      for (const q of this.queues.values()) for (const item of q.items.splice(0)) item.reject(err);
      this.failedStarts = 0;
      return;
    }
    this.fill();
  }

  private fill(): void {
    while (this.threads.length < this.size) this.spawn().catch(() => undefined);
  }
}
