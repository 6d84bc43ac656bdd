/**
 * One thread of SigningThreads. It signs whole slices with a PKCS#11 session of its own, C_SignInit and
 * C_Sign both on this thread (SoftHSM's C_SignInit is heavy, and graphene would run it on the main
 * thread), and checks the signatures (SignatureCheck) before any leaves. PKCS#11 state belongs to the
 * process: the key store that started this thread has initialised the module and logged in, so the
 * thread attaches to both, and never finalises.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as graphene from 'graphene-pk11';
import { isFleetError, type PoolHello } from '@fleetpki/core';
import { ecdsaRawToDer } from './ecdsa.js';
import { attachModule, findSlot, isBrokenSession, loginWithRetry } from './pkcs11-module.js';
import { findOneKey } from './pkcs11-objects.js';
import { inP256ScalarRange, type SignatureCheck } from './signature-check.js';

export interface SigningThreadInit {
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly check: SignatureCheck;
}

export interface SliceRequest {
  /** WorkerPool's message id: the reply carries it back. */
  readonly id: number;
  readonly key: { readonly label: string; readonly id?: Uint8Array };
  readonly publicKeySpki: Uint8Array;
  /** The data to sign, one after another; `ends[i]` is where item i ends. */
  readonly data: Uint8Array;
  readonly ends: Uint32Array;
  /** For each item, whether its signature is verified here (SignatureCheck), 1 or 0. */
  readonly verify: Uint8Array;
}

export type SliceReply =
  | { readonly id: number; readonly ok: true; readonly signatures: Uint8Array; readonly ends: Uint32Array; readonly relogged?: true }
  | { readonly id: number; readonly ok: false; readonly code: string; readonly message: string };

class SliceSigner {
  private readonly keys = new Map<string, { key: graphene.Key; publicKey: KeyObject }>();
  private session: graphene.Session | undefined;

  private constructor(
    private readonly slot: graphene.Slot,
    private readonly init: SigningThreadInit,
  ) {}

  static async open(init: SigningThreadInit): Promise<SliceSigner> {
    const signer = new SliceSigner(findSlot(attachModule(init.modulePath), init.tokenLabel, init.modulePath), init);
    await signer.openSession();
    return signer;
  }

  /**
   * Signs a slice. A session closed underneath or a token logged out (PKCS#11 logins are per process:
   * anything in it can log the token out) is replaced, logged in again, and the slice signed once more.
   */
  async sign(request: SliceRequest): Promise<SliceReply> {
    try {
      return this.signSlice(request);
    } catch (err) {
      if (!isBrokenSession(err)) throw err;
      await this.openSession();
      // Said in the reply: the main thread's metrics count re-logins (this thread has no observer).
      const reply = this.signSlice(request);
      return reply.ok ? { ...reply, relogged: true } : reply;
    }
  }

  private async openSession(): Promise<void> {
    try {
      this.session?.close();
    } catch {
      // already gone: that is why it is being replaced
    }
    this.keys.clear();
    this.session = this.slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    await loginWithRetry(this.session, this.init.pin, this.init.tokenLabel);
  }

  private signSlice(request: SliceRequest): SliceReply {
    const session = this.session!;
    const { key, publicKey } = this.keyFor(request);
    const out: Buffer[] = [];
    const ends = new Uint32Array(request.ends.length);
    let start = 0;
    let length = 0;
    for (let i = 0; i < request.ends.length; i++) {
      const data = request.data.subarray(start, request.ends[i]);
      start = request.ends[i]!;
      // SoftHSM has no CKM_ECDSA_SHA256: hash here, sign the digest with CKM_ECDSA (r || s).
      const raw = session.createSign('ECDSA', key).once(createHash('sha256').update(data).digest());
      if (!inP256ScalarRange(raw)) return refused(request, `the HSM returned r or s out of range for item ${i} of the slice`);
      const der = ecdsaRawToDer(raw);
      if (request.verify[i] && !verify('sha256', data, publicKey, der)) return refused(request, `the HSM's signature for item ${i} of the slice does not verify with the public key of "${request.key.label}"`);
      out.push(der);
      length += der.length;
      ends[i] = length;
    }
    // A buffer of its own (Buffer.concat may hand out a slice of the shared pool): it is transferred.
    const signatures = new Uint8Array(length);
    let at = 0;
    for (const der of out) {
      signatures.set(der, at);
      at += der.length;
    }
    return { id: request.id, ok: true, signatures, ends };
  }

  private keyFor(request: SliceRequest): { key: graphene.Key; publicKey: KeyObject } {
    const name = `${request.key.label}/${request.key.id ? Buffer.from(request.key.id).toString('hex') : ''}`;
    let found = this.keys.get(name);
    if (!found) {
      const ref = { label: request.key.label, ...(request.key.id ? { id: Buffer.from(request.key.id) } : {}) };
      found = {
        key: findOneKey(this.session!, graphene.ObjectClass.PRIVATE_KEY, ref, this.init.tokenLabel),
        publicKey: createPublicKey({ key: Buffer.from(request.publicKeySpki), format: 'der', type: 'spki' }),
      };
      this.keys.set(name, found);
    }
    return found;
  }
}

function refused(request: SliceRequest, message: string): SliceReply {
  return { id: request.id, ok: false, code: 'HSM_SIGNATURE_INVALID', message };
}

async function serve(init: SigningThreadInit): Promise<void> {
  const port = parentPort!;
  let signer: SliceSigner;
  try {
    signer = await SliceSigner.open(init);
  } catch (err) {
    port.postMessage({ ready: false, code: isFleetError(err) ? err.code : 'HSM_OPERATION_FAILED', message: (err as Error).message } satisfies PoolHello);
    return;
  }
  // One slice at a time: a slice whose session is being replaced holds the next back.
  let previous: Promise<void> = Promise.resolve();
  port.on('message', (request: SliceRequest) => {
    previous = previous.then(async () => {
      let reply: SliceReply;
      try {
        reply = await signer.sign(request);
      } catch (err) {
        reply = { id: request.id, ok: false, code: isFleetError(err) ? err.code : 'HSM_OPERATION_FAILED', message: `signing with "${request.key.label}" failed: ${(err as Error).message}` };
      }
      port.postMessage(reply, reply.ok ? [reply.signatures.buffer as ArrayBuffer, reply.ends.buffer as ArrayBuffer] : []);
    });
  });
  port.postMessage({ ready: true } satisfies PoolHello);
}

// Only as a worker thread (a type import from the main thread runs nothing).
if (!isMainThread && parentPort && (workerData as { fleetpkiSigningThread?: SigningThreadInit } | undefined)?.fleetpkiSigningThread) {
  void serve((workerData as { fleetpkiSigningThread: SigningThreadInit }).fleetpkiSigningThread);
}
