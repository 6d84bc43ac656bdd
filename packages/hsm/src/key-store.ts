/**
 * What the CA needs from a key store, kept small so another backend (a network HSM, a cloud KMS) is a
 * new implementation of these interfaces, tested by the same contract suite (test/hsm-contract.test.ts).
 */
export interface Signer {
  readonly algorithm: 'ecdsa-p256-sha256';
  /** DER SubjectPublicKeyInfo of the key. */
  readonly publicKeySpki: Buffer;
  /**
   * Signs `data` (SHA-256 computed on the host) and returns a DER ECDSA-Sig-Value, checked before it is
   * returned as the store's SignatureCheck says (default: verified with the public key); a signature
   * that fails the check is an HSM_SIGNATURE_INVALID error, never returned.
   */
  sign(data: Uint8Array): Promise<Buffer>;
}

/**
 * Which key: its label and, where known, its CKA_ID. Keys are found by both (RFC 7512 `object` and
 * `id`); two objects of a class with one label are an error that names them, never "take the first".
 */
export interface KeyRef {
  readonly label: string;
  readonly id?: Buffer;
}

/** A bare label is a KeyRef without an id. */
export function keyRef(ref: KeyRef | string): KeyRef {
  return typeof ref === 'string' ? { label: ref } : ref;
}

export interface KeyInfo {
  readonly label: string;
  readonly id: Buffer;
  readonly publicKeySpki: Buffer;
  readonly extractable: boolean;
  readonly sensitive: boolean;
  /** Wrappable only under a key the security officer marked CKA_TRUSTED (PKCS#11 v2.40 4.9). */
  readonly wrapWithTrusted: boolean;
  /** Set by the token: the key was never readable in clear / never extractable since its creation. */
  readonly alwaysSensitive: boolean;
  readonly neverExtractable: boolean;
}

export interface GenerateKeyOptions {
  /**
   * Cloneable keys (CKA_EXTRACTABLE) may leave the token only wrapped, and (CKA_WRAP_WITH_TRUSTED)
   * only under the custody ceremony's trusted key-encryption key: the online CA keys, cloned into the
   * standby's token. Every other key is never extractable at all.
   */
  readonly cloneable?: boolean;
}

/** A private key encrypted under a key-encryption key, as it travels from one HSM to another. */
export interface WrappedKey {
  readonly label: string;
  readonly id: Buffer;
  /** CKM_AES_KEY_WRAP_PAD (RFC 5649) of the PKCS#8 private key. */
  readonly mechanism: 'aes-key-wrap-pad';
  readonly wrapped: Buffer;
  readonly publicKeySpki: Buffer;
}

/** A per-batch transport to a factory: device keys diversified in the HSM, wrapped under an agreed KEK. */
export interface DeviceKeyTransport {
  /** The HSM's ephemeral P-256 public key (uncompressed point), for the bundle header. */
  readonly ephemeralPoint: Buffer;
  /** Diversifies each device key from its master key and wraps it (RFC 3394) under the transport KEK. */
  wrapDeviceKeys(items: readonly { masterLabel: string; data: Buffer }[]): Promise<{ wrapped: Buffer; kcv: Buffer }[]>;
  close(): Promise<void>;
}

/** Signing keys: what a ceremony needs of the offline root's HSM, and the services of their site's. */
export interface SigningKeyStore {
  readonly tokenLabel: string;
  generateSigningKey(label: string, options?: GenerateKeyOptions): Promise<KeyInfo>;
  getSigner(ref: KeyRef | string): Promise<Signer>;
  describeKey(ref: KeyRef | string): Promise<KeyInfo>;
  hasKey(ref: KeyRef | string): Promise<boolean>;
  close(): Promise<void>;
}

/** A key's protection as the token reports it, for `fleetpki hsm check`. */
export interface KeyProtection {
  readonly class: 'private' | 'secret';
  readonly label: string;
  readonly id: Buffer;
  readonly sensitive: boolean;
  readonly extractable: boolean;
  readonly wrapWithTrusted: boolean;
  readonly alwaysSensitive: boolean;
  readonly neverExtractable: boolean;
  readonly trusted: boolean;
  readonly private: boolean;
  /** CKA_MODIFIABLE and CKA_COPYABLE: whether a user session may change it, or make a copy of it. */
  readonly modifiable: boolean;
  readonly copyable: boolean;
}

/** Master keys (AES) for device-key diversification: what DeviceKeyService creates and custody checks. */
export interface MasterKeyStore {
  readonly tokenLabel: string;
  /** An AES-256 master key for device-key diversification (sensitive; wrappable only under a trusted key). */
  generateMasterKey(label: string): Promise<{ id: Buffer }>;
  hasSecretKey(ref: KeyRef | string): Promise<boolean>;
  masterCheckValue(ref: KeyRef | string): Promise<Buffer>;
}

export interface UnwrapOptions {
  readonly cloneable?: boolean;
}

/** Key custody: what a restore from custodian shares needs of the receiving token. */
export interface CustodyKeyStore extends SigningKeyStore, MasterKeyStore {
  /**
   * Unwraps into this token as a sensitive key pair with the wrapped key's label and id; `kek` (the value
   * the custodians' shares rebuild) is a session object for the call only. A clone (the standby's) is
   * non-extractable; `cloneable` gives it the protection of a key generated at the active site instead
   * (extractable only wrapped under a trusted key), for a site rebuilt from custody that must be able to
   * clone its keys again (a disaster's rebuild).
   */
  unwrapPrivateKey(wrapped: WrappedKey, kek: Uint8Array, options?: UnwrapOptions): Promise<KeyInfo>;
  /** The same for a device master key (AES); `checkValue` identifies the key (masterCheckValue). */
  unwrapSecretKey(ref: KeyRef, wrapped: Buffer, kek: Uint8Array, options?: UnwrapOptions): Promise<{ checkValue: Buffer }>;
}

/** Device keys: diversified from a master key and wrapped for a factory, or used to MAC. */
export interface DeviceKeyHsm {
  readonly tokenLabel: string;
  /** Ephemeral-static ECDH with the factory's P-256 point and the transport KDF over `context`, in the HSM. */
  openDeviceKeyTransport(factoryPoint: Buffer, context: Buffer): Promise<DeviceKeyTransport>;
  /** AES-CMAC of `message` under the device key diversified by `data` (tests, device authentication). */
  deviceMac(masterLabel: string, data: Buffer, message: Buffer): Promise<Buffer>;
}

/** Trusted token objects: an alarm when any is found (readiness, `hsm check`, `hsm destroy-trusted-key`). */
export interface TrustedKeyStore {
  readonly tokenLabel: string;
  /**
   * Token objects marked CKA_TRUSTED (secret or public keys). fleetpki never leaves one on a token (the
   * custody ceremony's KEK is a session object of its own process), so any is an alarm: planted by a
   * security officer, or left by an older ceremony (README "Key protection").
   */
  listTrustedKeys(): Promise<{ label: string; id: Buffer; class: 'secret' | 'public' }[]>;
  /** Destroys the trusted token object(s) labelled `label` (what `hsm destroy-trusted-key` does); how many went. */
  destroyTrustedKey(label: string): Promise<number>;
}

/** Probes and checks: key protection (`hsm check`, harden) and the self-tests' known answers. */
export interface KeyProbeStore extends TrustedKeyStore {
  /** Every private and secret key in the token with its protection attributes. */
  listKeyProtection(): Promise<KeyProtection[]>;
  /** Makes a key non-extractable in place (true -> false is the one change PKCS#11 allows): migration. */
  restrictToToken(ref: KeyRef | string, keyClass: 'private' | 'secret'): Promise<void>;
  /** Known-answer tests of the wrap mechanisms and the diversification (self-tests; no stored key involved). */
  knownAnswerWrap(mechanism: 'aes-key-wrap' | 'aes-key-wrap-pad', kek: Buffer, keyMaterial: Buffer): Promise<Buffer>;
  knownAnswerDiversify(master: Buffer, kek: Buffer, data: Buffer): Promise<{ wrapped: Buffer; kcv: Buffer }>;
}

/**
 * A whole token, as the PKCS#11 store implements it: the union of the interfaces above. Callers take
 * the narrowest one they need (a signing service a SigningKeyStore, a restore a CustodyKeyStore).
 */
export interface KeyStore extends SigningKeyStore, CustodyKeyStore, DeviceKeyHsm, KeyProbeStore {}
