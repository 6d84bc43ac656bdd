/**
 * The child side of HsmProcess: one PKCS#11 module instance, driven over the IPC channel. Every
 * operation is a method of `operations`; errors go back with their stable code. Nothing here logs a
 * PIN or puts one in an error message.
 */
import { isFleetError } from '@fleetpki/core';
import { initToken, installTrustedWrappingKey, listTokenLabels, rePinToken, type TrustedKeyMaterial } from './pkcs11-admin.js';
import { Pkcs11KeyStore } from './pkcs11-key-store.js';
import { Pkcs11Probes, type ProbeOutcome } from './pkcs11-probes.js';
import type { GenerateKeyOptions, KeyInfo, KeyProtection, KeyRef } from './key-store.js';

let modulePath = '';
const softhsmConf = process.env.SOFTHSM2_CONF;
let store: Pkcs11KeyStore | undefined;

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
  async installTrustedKey(tokenLabel: string, soPin: string, key: TrustedKeyMaterial): Promise<void> {
    await installTrustedWrappingKey(modulePath, tokenLabel, soPin, key);
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
  async sign(ref: KeyRef, data: Uint8Array): Promise<Buffer> {
    return (await openStore().getSigner(ref)).sign(data);
  },
  async restrictToToken(ref: KeyRef, keyClass: 'private' | 'secret'): Promise<void> {
    await openStore().restrictToToken(ref, keyClass);
  },
  async listKeyProtection(): Promise<KeyProtection[]> {
    return openStore().listKeyProtection();
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
