/**
 * The child side of HsmProcess: one PKCS#11 module instance, driven over the IPC channel. Every
 * operation is a method of `operations`; errors go back with their stable code. Nothing here logs a
 * PIN or puts one in an error message.
 */
import { isFleetError } from '@fleetpki/core';
import { wrapForCustody, type CustodyWrapRequest, type CustodyWrapResult } from './custody-wrap.js';
import { initToken, listTokenLabels, plantLegacyTrustedKek, rePinToken } from './pkcs11-admin.js';
import { Pkcs11KeyStore } from './pkcs11-key-store.js';
import { Pkcs11Probes, type ProbeOutcome, type TrustedKeyTheft } from './pkcs11-probes.js';
import type { GenerateKeyOptions, KeyInfo, KeyProtection, KeyRef, UnwrapOptions, WrappedKey } from './key-store.js';

let modulePath = '';
const softhsmConf = process.env.SOFTHSM2_CONF;
let store: Pkcs11KeyStore | undefined;
/** The trusted-key attack running in the background (probeTheftStart .. probeTheftStop). */
let theft: { stop: boolean; rounds: number; seen: Set<string>; copies: number; modified: number; extracted: Map<string, Buffer>; done: Promise<void> } | undefined;

function openStore(): Pkcs11KeyStore {
  if (!store) throw new Error('no key store is open in this HSM process (call openKeyStore first)');
  return store;
}

export const operations = {
  async load(path: string): Promise<void> {
    modulePath = path;
  },
  async listTokens(): Promise<string[]> {
    return listTokenLabels(modulePath);
  },
  async initToken(label: string, soPin: string, userPin: string): Promise<'created' | 'present'> {
    return initToken(modulePath, { label, soPin, userPin });
  },
  /** The custody ceremony's wrap (custody-wrap.ts): in this process, which must hold no other login. */
  async wrapForCustody(request: CustodyWrapRequest): Promise<CustodyWrapResult> {
    if (store) throw new Error('the custody wrap runs in an HSM process of its own, with no key store open');
    return wrapForCustody(modulePath, request);
  },
  async rePin(tokenLabel: string, soPin: string, pins: { userPin: string; soPin?: string }): Promise<void> {
    await rePinToken(modulePath, tokenLabel, soPin, pins);
  },
  async openKeyStore(tokenLabel: string, pin: string, sessions: number): Promise<void> {
    store = await Pkcs11KeyStore.open({ modulePath, tokenLabel, pin, sessions, ...(softhsmConf ? { softhsmConf } : {}) });
  },
  async hasKey(ref: KeyRef): Promise<boolean> {
    return openStore().hasKey(ref);
  },
  async generateSigningKey(label: string, options: GenerateKeyOptions): Promise<KeyInfo> {
    return openStore().generateSigningKey(label, options);
  },
  async describeKey(ref: KeyRef): Promise<KeyInfo> {
    return openStore().describeKey(ref);
  },
  async unwrapPrivateKey(wrapped: WrappedKey, kek: Uint8Array, options: UnwrapOptions): Promise<KeyInfo> {
    return openStore().unwrapPrivateKey({ ...wrapped, id: Buffer.from(wrapped.id), wrapped: Buffer.from(wrapped.wrapped), publicKeySpki: Buffer.from(wrapped.publicKeySpki) }, kek, options);
  },
  async sign(ref: KeyRef, data: Uint8Array): Promise<Buffer> {
    return (await openStore().getSigner(ref)).sign(data);
  },
  async restrictToToken(ref: KeyRef, keyClass: 'private' | 'secret'): Promise<void> {
    await openStore().restrictToToken(ref, keyClass);
  },
  async listKeyProtection(): Promise<KeyProtection[]> {
    return openStore().listKeyProtection();
  },
  async listTrustedKeys(): Promise<{ label: string; id: Buffer; class: 'secret' | 'public' }[]> {
    return openStore().listTrustedKeys();
  },
  /** What an attacker holding this token's user PIN would try (Pkcs11Probes), run inside this HSM's process. */
  async probeWrapUnderOwnKey(ref: KeyRef, keyClass: 'private' | 'secret'): Promise<{ refused: boolean; reason?: string }> {
    const outcome = new Pkcs11Probes(openStore()).wrapUnderOwnKey(ref, keyClass);
    // The blob and the attacker's key stay here: the caller learns only whether the token refused.
    return outcome.refused ? { refused: true, reason: outcome.reason } : { refused: false };
  },
  async probeWeaken(ref: KeyRef, keyClass: 'private' | 'secret', change: { wrapWithTrusted: false } | { extractable: true }): Promise<ProbeOutcome> {
    return new Pkcs11Probes(openStore()).weakenKey(ref, keyClass, change);
  },
  async probeDeriveInClear(ref: KeyRef, data: Buffer): Promise<{ refused: true; reason: string } | { refused: false; value: Buffer }> {
    return new Pkcs11Probes(openStore()).deriveInClear(ref, Buffer.from(data));
  },
  async probeReadValue(ref: KeyRef, keyClass: 'private' | 'secret'): Promise<ProbeOutcome> {
    return new Pkcs11Probes(openStore()).readValue(ref, keyClass);
  },
  async probeCopy(ref: KeyRef, keyClass: 'private' | 'secret' | 'trusted'): Promise<ProbeOutcome> {
    return new Pkcs11Probes(openStore()).copyKey(ref, keyClass);
  },
  async probeModify(ref: KeyRef, keyClass: 'private' | 'secret' | 'trusted'): Promise<ProbeOutcome> {
    return new Pkcs11Probes(openStore()).modifyKey(ref, keyClass);
  },
  /**
   * Starts the trusted-key attack (Pkcs11Probes.stealThroughTrustedKeys) in a loop, as a process holding
   * the user PIN would run it beside a custody ceremony; probeTheftStop ends it and says what it got.
   */
  async probeTheftStart(targets: { ref: KeyRef; keyClass: 'private' | 'secret' }[]): Promise<void> {
    const probes = new Pkcs11Probes(openStore());
    const state = { stop: false, rounds: 0, seen: new Set<string>(), copies: 0, modified: 0, extracted: new Map<string, Buffer>(), done: Promise.resolve() };
    state.done = (async () => {
      while (!state.stop) {
        const got: TrustedKeyTheft = probes.stealThroughTrustedKeys(targets);
        state.rounds++;
        for (const label of got.trustedSeen) state.seen.add(label);
        state.copies += got.copies;
        state.modified += got.modified;
        for (const e of got.extracted) state.extracted.set(e.label, e.value);
        await new Promise((r) => setImmediate(r));
      }
    })();
    theft = state;
  },
  async probeTheftStop(): Promise<{ rounds: number; trustedSeen: string[]; copies: number; modified: number; extracted: { label: string; value: Buffer }[] }> {
    const state = theft;
    if (!state) throw new Error('no trusted-key attack is running in this HSM process');
    state.stop = true;
    await state.done;
    theft = undefined;
    return { rounds: state.rounds, trustedSeen: [...state.seen], copies: state.copies, modified: state.modified, extracted: [...state.extracted].map(([label, value]) => ({ label, value })) };
  },
  /** A trusted key as ceremonies made them before issue 33 (pkcs11-admin plantLegacyTrustedKek), as the SO. */
  async probePlantLegacyTrustedKek(tokenLabel: string, soPin: string, label: string): Promise<void> {
    plantLegacyTrustedKek(modulePath, tokenLabel, soPin, label);
  },
  /** An old-style key (Pkcs11Probes.generateLegacySigningKey), to reproduce an older installation in tests. */
  async probeGenerateLegacySigningKey(label: string): Promise<{ id: Buffer }> {
    return new Pkcs11Probes(openStore()).generateLegacySigningKey(label);
  },
  async close(): Promise<void> {
    await store?.close();
    store = undefined;
    setImmediate(() => process.exit(0));
  },
};

export type HsmChildOperations = typeof operations;

// Run only as the forked child (HsmProcess), not when a type is imported.
if (process.send) {
  process.on('message', (message: { id: number; op: keyof HsmChildOperations; args: unknown[] }) => {
    const fn = operations[message.op] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    const reply = (body: Record<string, unknown>) => process.send!({ id: message.id, ...body });
    if (!fn) return reply({ ok: false, error: { code: 'HSM_OPERATION_FAILED', message: `unknown HSM process operation ${String(message.op)}` } });
    fn(...message.args).then(
      (result) => reply({ ok: true, result }),
      (err: unknown) => reply({ ok: false, error: { code: isFleetError(err) ? err.code : 'HSM_OPERATION_FAILED', message: (err as Error).message } }),
    );
  });
  // The parent going away ends this process: nothing may keep an HSM login open on its own.
  process.on('disconnect', () => process.exit(0));
}
