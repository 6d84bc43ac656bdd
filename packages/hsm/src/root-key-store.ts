import { HsmProcess, type HsmInstance } from './hsm-process.js';
import { keyRef, type GenerateKeyOptions, type KeyInfo, type KeyRef, type Signer, type SigningKeyStore, type UnwrapOptions, type WrappedKey } from './key-store.js';

/**
 * A signing key store in an HSM of its own, driven from a child process (HsmProcess): the offline
 * root's token. A ceremony opens it with the root PIN the custodians bring; no service ever does, and
 * the services' own PKCS#11 configuration does not even list its token.
 */
export interface RemoteKeyStore extends SigningKeyStore {
  /** Unwraps a key into this token (a root's second copy, from its custodians' shares): see CustodyKeyStore. */
  unwrapPrivateKey(wrapped: WrappedKey, kek: Uint8Array, options?: UnwrapOptions): Promise<KeyInfo>;
}

export async function openRemoteKeyStore(instance: HsmInstance, tokenLabel: string, pin: string): Promise<RemoteKeyStore> {
  const hsm = await HsmProcess.start(instance);
  try {
    await hsm.call('openKeyStore', tokenLabel, pin, 1);
  } catch (err) {
    await hsm.close();
    throw err;
  }
  return {
    tokenLabel,
    generateSigningKey: (label: string, options: GenerateKeyOptions = {}): Promise<KeyInfo> => hsm.call('generateSigningKey', label, options).then(asKeyInfo),
    describeKey: (ref: KeyRef | string): Promise<KeyInfo> => hsm.call('describeKey', keyRef(ref)).then(asKeyInfo),
    hasKey: (ref: KeyRef | string): Promise<boolean> => hsm.call('hasKey', keyRef(ref)),
    unwrapPrivateKey: (wrapped: WrappedKey, kek: Uint8Array, options: UnwrapOptions = {}): Promise<KeyInfo> => hsm.call('unwrapPrivateKey', wrapped, kek, options).then(asKeyInfo),
    async getSigner(ref: KeyRef | string): Promise<Signer> {
      const info = asKeyInfo(await hsm.call('describeKey', keyRef(ref)));
      const exact = { label: info.label, id: info.id };
      return { algorithm: 'ecdsa-p256-sha256', publicKeySpki: info.publicKeySpki, sign: async (data) => Buffer.from(await hsm.call('sign', exact, data)) };
    },
    close: () => hsm.close(),
  };
}

/** Buffers come back over IPC as Uint8Array views (structured clone); KeyInfo's fields are Buffers. */
function asKeyInfo(info: KeyInfo): KeyInfo {
  return { ...info, id: Buffer.from(info.id), publicKeySpki: Buffer.from(info.publicKeySpki) };
}
