import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { FleetError, WorkerPool } from '@fleetpki/core';
import { csrPossessionRefused, readCsr, verifyP256 } from './csr.js';
import type { PossessionReply, PossessionRequest } from './possession-thread.js';
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

/**
 * The thread's program (possession-thread.ts, node:crypto and nothing else), beside this file: the emitted
 * JavaScript in a build, the TypeScript source otherwise (a worker thread inherits the process's --import
 * hooks, tsx, on Node 24).
 */
const THREAD_ENTRY = fileURLToPath(import.meta.url).replace(/possession-threads\.(ts|js)$/, 'possession-thread.$1');

/** Checks asked for in one turn of the event loop travel together, up to this many per message. */
const MESSAGE_MAX = 64;

/**
 * Proof-of-possession checks on worker threads (WorkerPool). Checks asked for in the same turn of the
 * event loop go out together (a batch chunk's in messages of 64, concurrent enrolments' at once). A
 * thread that dies loses nothing: its checks go back to the queue and a new thread takes them (a check
 * has no effect, so doing one twice is harmless). Threads that keep dying before their first answer
 * leave the checks to the main thread.
 */
export class PossessionThreads extends WorkerPool<Check[], PossessionReply> implements PossessionVerifier {
  private readonly queue: Check[] = [];
  /** Threads could not start: the main thread checks (enrolment must not stop for want of a thread). */
  private inline = false;

  private constructor(size: number) {
    super(size, { maxInFlight: Infinity, waitsForHello: false });
  }

  /** `threads` threads; 0 gives the inline verifier (scripts, tests, a one-core deployment). */
  static start(threads: number): PossessionVerifier & { close(): Promise<void> } {
    if (threads <= 0) return { ...inlinePossessionVerifier, close: async () => undefined };
    const pool = new PossessionThreads(threads);
    void pool.fill();
    return pool;
  }

  verify(key: DevicePublicKey, data: Uint8Array, signatureDer: Uint8Array): Promise<boolean> {
    if (this.closed) return Promise.reject(new FleetError('POSSESSION_CHECKS_CLOSED', 'the proof-of-possession threads are closed', { httpStatus: 503 }));
    if (this.inline) return inlinePossessionVerifier.verify(key, data, signatureDer);
    return new Promise<boolean>((resolve) => {
      this.queue.push({ key, data, signature: signatureDer, resolve });
      this.schedule();
    });
  }

  async close(): Promise<void> {
    const inFlight = await this.terminateAll();
    // Nothing waits forever: what was asked is checked here instead.
    for (const check of [...inFlight.flat(), ...this.queue.splice(0)]) check.resolve(verifyP256(check.key, check.data, check.signature));
  }

  protected startThread(): Worker {
    return new Worker(THREAD_ENTRY);
  }

  protected takeWork(): Check[] | undefined {
    return this.queue.length > 0 ? this.queue.splice(0, MESSAGE_MAX) : undefined;
  }

  protected request(checks: Check[], id: number): { message: PossessionRequest; transfer: [] } {
    return { message: { id, checks: checks.map((c) => ({ point: c.key.point, data: c.data, signature: c.signature })) }, transfer: [] };
  }

  protected answer(checks: Check[], reply: PossessionReply): void {
    checks.forEach((check, i) => check.resolve(reply.ok[i] === 1));
  }

  protected requeue(lost: readonly Check[][]): void {
    this.queue.unshift(...lost.flat());
  }

  protected startsFailing(): void {
    this.inline = true;
    for (const check of this.queue.splice(0)) check.resolve(verifyP256(check.key, check.data, check.signature));
  }

  protected startError(cause: { readonly code: string; readonly message: string } | Error): Error {
    return new FleetError('POSSESSION_THREAD_FAILED', `a proof-of-possession thread failed to start: ${cause.message}`);
  }
}
