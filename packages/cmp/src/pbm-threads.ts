import { Worker } from 'node:worker_threads';
import { FleetError, WorkerPool } from '@fleetpki/core';
import { inlinePbm, passwordBasedMac, type PbmComputer, type PbmParameters } from './protection.js';

interface Job {
  readonly secret: Buffer;
  readonly parameters: PbmParameters;
  readonly data: Buffer;
  readonly resolve: (mac: Buffer) => void;
  readonly reject: (err: unknown) => void;
}

interface Reply {
  readonly id: number;
  readonly mac?: Uint8Array;
  readonly error?: string;
}

/**
 * The thread's whole program, started with `eval` for the reason possession-threads.ts gives (node:crypto
 * and nothing of ours). RFC 4211 4.4: the key is OWF^iterations(secret || salt), then MAC(key, data).
 * The parameters were checked (algorithms, iteration count) by readPbmParameters before they got here.
 */
const THREAD_PROGRAM = `
const { parentPort } = require('node:worker_threads');
const { createHash, createHmac } = require('node:crypto');
parentPort.on('message', ({ id, secret, salt, owf, iterations, mac, data }) => {
  try {
    let key = createHash(owf).update(secret).update(salt).digest();
    for (let i = 1; i < iterations; i++) key = createHash(owf).update(key).digest();
    const out = createHmac(mac, key).update(data).digest();
    parentPort.postMessage({ id, mac: new Uint8Array(out.buffer, out.byteOffset, out.byteLength) });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message) });
  }
});
`;

/**
 * Password-based MACs (CMP's MAC protection) on a worker thread: a request's PBM iterations are chosen
 * by its sender before anything authenticates it, up to MAX_PBM_ITERATIONS (~45 ms), and an answer's
 * are ours; neither runs on the JavaScript main thread, where they would hold up every other request.
 * One message per MAC (each is long enough to be worth a message). A thread that dies loses nothing:
 * its MACs are computed again by the next one; threads that cannot start leave the MACs to the main thread.
 */
export class PbmThreads extends WorkerPool<Job, Reply> implements PbmComputer {
  private readonly queue: Job[] = [];
  private inline = false;

  private constructor(size: number) {
    super(size, { maxInFlight: 1, waitsForHello: false });
  }

  /** `threads` threads; 0 gives the inline computer (scripts, tests). */
  static start(threads: number): PbmComputer & { close(): Promise<void> } {
    if (threads <= 0) return { ...inlinePbm, close: async () => undefined };
    const pool = new PbmThreads(threads);
    void pool.fill();
    return pool;
  }

  /** How many MACs wait for a thread. */
  get waiting(): number {
    return this.queue.length;
  }

  mac(secret: Buffer, parameters: PbmParameters, data: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(new FleetError('PBM_THREADS_CLOSED', 'the password-based MAC threads are closed', { httpStatus: 503 }));
    if (this.inline) return inlinePbm.mac(secret, parameters, data);
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ secret, parameters, data, resolve, reject });
      this.schedule();
    });
  }

  async close(): Promise<void> {
    const inFlight = await this.terminateAll();
    for (const job of [...inFlight, ...this.queue.splice(0)]) this.computeHere(job);
  }

  private computeHere(job: Job): void {
    try {
      job.resolve(passwordBasedMac(job.secret, job.parameters, job.data));
    } catch (err) {
      job.reject(err);
    }
  }

  protected startThread(): Worker {
    return new Worker(THREAD_PROGRAM, { eval: true });
  }

  protected takeWork(): Job | undefined {
    return this.queue.shift();
  }

  protected request(job: Job, id: number): { message: unknown; transfer: [] } {
    const p = job.parameters;
    return { message: { id, secret: job.secret, salt: p.salt, owf: p.owf, iterations: p.iterations, mac: p.mac, data: job.data }, transfer: [] };
  }

  protected answer(job: Job, reply: Reply): void {
    if (reply.mac) job.resolve(Buffer.from(reply.mac.buffer, reply.mac.byteOffset, reply.mac.byteLength));
    else job.reject(new FleetError('PBM_FAILED', `the password-based MAC could not be computed: ${reply.error ?? 'unknown error'}`, { httpStatus: 500 }));
  }

  protected requeue(lost: readonly Job[]): void {
    this.queue.unshift(...lost);
  }

  protected startsFailing(): void {
    this.inline = true;
    for (const job of this.queue.splice(0)) this.computeHere(job);
  }

  protected startError(cause: { readonly code: string; readonly message: string } | Error): Error {
    return new FleetError('PBM_THREAD_FAILED', `a password-based MAC thread failed to start: ${cause.message}`);
  }
}
