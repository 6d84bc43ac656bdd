import { Worker } from 'node:worker_threads';
import { FleetError } from '@fleetpki/core';
import { csrPossessionRefused, readCsr, verifyP256 } from './csr.js';
import type { DevicePublicKey } from './public-key.js';

/**
 * Checks proofs of possession: a device key's ECDSA P-256 signature over its request. Each costs
 * ~150 us of CPU (importing the key ~70, the verification ~80), more than anything else a certificate
 * costs outside the HSM, so services that check them all day do it on threads (PossessionThreads), not
 * on their JavaScript main thread; scripts and tests check inline.
 */
export interface PossessionVerifier {
  verify(key: DevicePublicKey, data: Uint8Array, signatureDer: Uint8Array): Promise<boolean>;
}

export const inlinePossessionVerifier: PossessionVerifier = {
  verify: async (key, data, signatureDer) => verifyP256(key, data, signatureDer),
};

/**
 * A PKCS#10 request from PEM, base64 or DER: its structure read here (readCsr), its signature checked
 * by `verifier`. Returns the proven key; CSR_MALFORMED / CSR_SIGNATURE_INVALID... otherwise, as parseCsr.
 */
export async function checkCsr(input: string | Uint8Array, verifier: PossessionVerifier): Promise<DevicePublicKey> {
  const { publicKey, parts } = readCsr(input);
  if (!(await verifier.verify(publicKey, parts.certificationRequestInfo, parts.signature))) throw csrPossessionRefused();
  return publicKey;
}

interface Check {
  readonly key: DevicePublicKey;
  readonly data: Uint8Array;
  readonly signature: Uint8Array;
  readonly resolve: (ok: boolean) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly inFlight: Map<number, Check[]>;
  answered: boolean;
}

/**
 * The thread's whole program. Written as a string and started with `eval`: it needs node:crypto and
 * nothing of ours, so it runs the same from sources (tsx, which a worker thread of Node 20 does not
 * inherit) and from a build. Same import as verifyP256: the key as a JWK, the cheapest OpenSSL 3 offers.
 */
const THREAD_PROGRAM = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
parentPort.on('message', ({ id, checks }) => {
  const ok = new Uint8Array(checks.length);
  checks.forEach(({ point, data, signature }, i) => {
    try {
      const p = Buffer.from(point.buffer, point.byteOffset, point.byteLength);
      const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: p.subarray(1, 33).toString('base64url'), y: p.subarray(33, 65).toString('base64url') }, format: 'jwk' });
      ok[i] = verify('sha256', data, key, signature) ? 1 : 0;
    } catch {
      ok[i] = 0;
    }
  });
  parentPort.postMessage({ id, ok }, [ok.buffer]);
});
`;

/** Checks asked for in one turn of the event loop travel together, up to this many per message. */
const MESSAGE_MAX = 64;
/** Threads that end before their first answer this many times in a row: checks run inline from then on. */
const FAILED_STARTS_LIMIT = 3;

/**
 * Proof-of-possession checks on worker threads. Checks asked for in the same turn of the event loop go
 * out together (a batch chunk's in messages of 64, concurrent enrolments' at once), to the thread with
 * the fewest in flight. A thread that dies loses nothing: its checks go back to the queue and a new
 * thread takes them (a check has no effect, so doing one twice is harmless).
 */
export class PossessionThreads implements PossessionVerifier {
  private readonly threads: Thread[] = [];
  private readonly queue: Check[] = [];
  private nextMessage = 1;
  private scheduled = false;
  private closed = false;
  private failedStarts = 0;

  private constructor(private readonly size: number) {}

  /** `threads` threads; 0 gives the inline verifier (scripts, tests, a one-core deployment). */
  static start(threads: number): PossessionVerifier & { close(): Promise<void> } {
    if (threads <= 0) return { ...inlinePossessionVerifier, close: async () => undefined };
    const pool = new PossessionThreads(threads);
    pool.fill();
    return pool;
  }

  verify(key: DevicePublicKey, data: Uint8Array, signatureDer: Uint8Array): Promise<boolean> {
    if (this.closed) return Promise.reject(new FleetError('POSSESSION_CHECKS_CLOSED', 'the proof-of-possession threads are closed', { httpStatus: 503 }));
    // Threads that cannot start (out of memory, say) must not stop enrolment: the main thread checks.
    if (this.failedStarts >= FAILED_STARTS_LIMIT) return inlinePossessionVerifier.verify(key, data, signatureDer);
    return new Promise<boolean>((resolve) => {
      this.queue.push({ key, data, signature: signatureDer, resolve });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  /** How many threads are running (fault-injection tests). */
  get threadCount(): number {
    return this.threads.length;
  }

  /** Ends a thread at once, whatever it is doing (tests: a thread lost with checks in flight). */
  async terminateThreadForFaultInjection(index = 0): Promise<void> {
    await this.threads[index]?.worker.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
    // Nothing waits forever: what was asked is checked here instead.
    for (const check of [...threads.flatMap((t) => [...t.inFlight.values()].flat()), ...this.queue.splice(0)]) {
      check.resolve(verifyP256(check.key, check.data, check.signature));
    }
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let thread: Thread | undefined;
      for (const t of this.threads) if (!thread || t.inFlight.size < thread.inFlight.size) thread = t;
      if (!thread) return;
      const checks = this.queue.splice(0, MESSAGE_MAX);
      const id = this.nextMessage++;
      thread.inFlight.set(id, checks);
      // A thread at work keeps the process alive (a script awaiting a check); an idle one does not.
      thread.worker.ref();
      thread.worker.postMessage({ id, checks: checks.map((c) => ({ point: c.key.point, data: c.data, signature: c.signature })) });
    }
  }

  private onReply(thread: Thread, reply: { id: number; ok: Uint8Array }): void {
    const checks = thread.inFlight.get(reply.id);
    if (!checks) return;
    thread.inFlight.delete(reply.id);
    thread.answered = true;
    this.failedStarts = 0;
    if (thread.inFlight.size === 0) thread.worker.unref();
    checks.forEach((check, i) => check.resolve(reply.ok[i] === 1));
  }

  private fill(): void {
    while (this.threads.length < this.size) {
      const worker = new Worker(THREAD_PROGRAM, { eval: true });
      worker.unref();
      const thread: Thread = { worker, inFlight: new Map(), answered: false };
      this.threads.push(thread);
      worker.on('message', (reply: { id: number; ok: Uint8Array }) => this.onReply(thread, reply));
      worker.on('error', () => undefined);
      worker.on('exit', () => this.onExit(thread));
    }
  }

  /** A thread ended: its checks go back to the front of the queue, and a new thread takes its place. */
  private onExit(thread: Thread): void {
    const at = this.threads.indexOf(thread);
    if (at < 0) return;
    this.threads.splice(at, 1);
    this.queue.unshift(...[...thread.inFlight.values()].flat());
    thread.inFlight.clear();
    if (this.closed) return;
    if (!thread.answered && ++this.failedStarts >= FAILED_STARTS_LIMIT) {
      for (const check of this.queue.splice(0)) check.resolve(verifyP256(check.key, check.data, check.signature));
      return;
    }
    this.fill();
    this.dispatch();
  }
}
