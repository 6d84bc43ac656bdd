import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { WorkerPool } from '@fleetpki/core';
import { HsmError, type HsmErrorCode } from './errors.js';
import type { KeyRef, Signer } from './key-store.js';
import type { SignatureCheck } from './signature-check.js';
import type { SigningThreadInit, SliceReply, SliceRequest } from './signing-thread.js';
import { reportRelogin } from './observer.js';

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

/**
 * The thread's entry, beside this file: the emitted JavaScript in a build, the TypeScript source otherwise.
 * A worker thread inherits the process's --import hooks (tsx) on Node 24, so either runs as it is.
 */
const THREAD_ENTRY = fileURLToPath(import.meta.url).replace(/signing-threads\.(ts|js)$/, 'signing-thread.$1');

/** Up to this many signatures go to a thread in one message; bigger slices cost latency, smaller ones messages. */
const SLICE_MAX = 64;
/** Slices queued per thread: one signing, one waiting, so a thread never waits for the main thread. */
const SLICES_PER_THREAD = 2;

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
export class SigningThreads extends WorkerPool<Slice, SliceReply> {
  private readonly queues = new Map<string, KeyQueue>();
  private sampled = 0;

  private constructor(
    private readonly init: SigningThreadInit,
    size: number,
  ) {
    super(size, { maxInFlight: SLICES_PER_THREAD, waitsForHello: true });
  }

  /**
   * Starts `threads` signing threads on a token this process has already opened and logged in to, and
   * waits until they are ready: a service is ready only once its signers are (a thread's first start
   * under tsx takes a second or two, too long for the first OCSP request to wait).
   */
  static async start(init: { modulePath: string; tokenLabel: string; pin: string; check: SignatureCheck }, threads: number): Promise<SigningThreads> {
    const pool = new SigningThreads(init, threads);
    try {
      await pool.fill();
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
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
          // After starts kept failing no thread runs: the next signature tries again.
          if (this.threadCount < this.size) this.fill().catch(() => undefined);
          this.schedule();
        }),
    };
  }

  async close(): Promise<void> {
    const inFlight = await this.terminateAll();
    const gone = new HsmError('HSM_OPERATION_FAILED', `the signing threads of token "${this.init.tokenLabel}" were closed`);
    for (const slice of inFlight) for (const item of slice.items) item.reject(gone);
    for (const q of this.queues.values()) for (const item of q.items.splice(0)) item.reject(gone);
  }

  protected startThread(): Worker {
    return new Worker(THREAD_ENTRY, { workerData: { fleetpkiSigningThread: this.init } });
  }

  protected takeWork(): Slice | undefined {
    const queue = [...this.queues.values()].find((q) => q.items.length > 0);
    return queue && { queue, items: queue.items.splice(0, SLICE_MAX) };
  }

  protected request(slice: Slice, id: number): { message: SliceRequest; transfer: ArrayBuffer[] } {
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
    const message: SliceRequest = { id, key: { label: key.label, ...(key.id ? { id: new Uint8Array(key.id) } : {}) }, publicKeySpki: new Uint8Array(publicKeySpki), data, ends, verify };
    return { message, transfer: [data.buffer, ends.buffer, verify.buffer] };
  }

  protected answer(slice: Slice, reply: SliceReply): void {
    if (reply.ok) {
      if (reply.relogged) reportRelogin();
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
  }

  protected requeue(slices: readonly Slice[]): void {
    for (const slice of [...slices].reverse()) slice.queue.items.unshift(...slice.items);
  }

  /** Starting keeps failing (a token gone, a PIN changed): what waits fails with the cause. */
  protected startsFailing(cause: Error | undefined): void {
    const err = cause ?? new HsmError('HSM_OPERATION_FAILED', `signing threads of token "${this.init.tokenLabel}" keep failing to start`);
    for (const q of this.queues.values()) for (const item of q.items.splice(0)) item.reject(err);
  }

  protected startError(cause: { readonly code: string; readonly message: string } | Error): Error {
    if (cause instanceof Error) return new HsmError('HSM_OPERATION_FAILED', `a signing thread of token "${this.init.tokenLabel}" failed to start: ${cause.message}`, cause);
    return new HsmError(cause.code as HsmErrorCode, cause.message);
  }
}
