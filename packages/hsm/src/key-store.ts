/**
 * What the CA needs from a key store, kept small so another backend (a network HSM, a cloud KMS) is a
 * new implementation of these interfaces, tested by the same contract suite (test/hsm-contract.test.ts).
 */
export interface Signer {
  readonly algorithm: 'ecdsa-p256-sha256';
  /** DER SubjectPublicKeyInfo of the key. */
  readonly publicKeySpki: Buffer;
  /** Signs `data` (SHA-256 computed on the host) and returns a DER ECDSA-Sig-Value. */
  sign(data: Uint8Array): Promise<Buffer>;
}

export interface KeyInfo {
  readonly label: string;
  readonly publicKeySpki: Buffer;
  readonly extractable: boolean;
  readonly sensitive: boolean;
}

export interface GenerateKeyOptions {
  /**
   * Extractable keys can still only leave the token wrapped (they are always CKA_SENSITIVE); CA keys
   * need it for cloning into the standby site's token. Device-facing keys never do.
   */
  readonly extractable?: boolean;
}

/** A private key encrypted under a key-encryption key, as it travels from one HSM to another. */
export interface WrappedKey {
  readonly label: string;
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

export interface KeyStore {
  readonly tokenLabel: string;
  generateSigningKey(label: string, options?: GenerateKeyOptions): Promise<KeyInfo>;
  getSigner(label: string): Promise<Signer>;
  describeKey(label: string): Promise<KeyInfo>;
  hasKey(label: string): Promise<boolean>;
  /**
   * Wraps an extractable private key under `kek` (a 256-bit AES key, present in the token only for the
   * call, as a non-extractable session object): how an HSM clones a key into another HSM.
   */
  wrapPrivateKey(label: string, kek: Uint8Array): Promise<WrappedKey>;
  /** Unwraps into this token as a sensitive, non-extractable key pair with the wrapped key's label. */
  unwrapPrivateKey(wrapped: WrappedKey, kek: Uint8Array): Promise<KeyInfo>;
  /** The same for a device master key (AES); `checkValue` identifies the key (masterCheckValue). */
  wrapSecretKey(label: string, kek: Uint8Array): Promise<{ wrapped: Buffer; checkValue: Buffer }>;
  unwrapSecretKey(label: string, wrapped: Buffer, kek: Uint8Array): Promise<{ checkValue: Buffer }>;
  masterCheckValue(label: string): Promise<Buffer>;
  /** An AES-256 master key for device-key diversification (sensitive; extractable only to be wrapped). */
  generateMasterKey(label: string): Promise<void>;
  hasSecretKey(label: string): Promise<boolean>;
  /** Ephemeral-static ECDH with the factory's P-256 point and the transport KDF over `context`, in the HSM. */
  openDeviceKeyTransport(factoryPoint: Buffer, context: Buffer): Promise<DeviceKeyTransport>;
  /** Known-answer tests of the wrap mechanisms and the diversification (self-tests; no stored key involved). */
  knownAnswerWrap(mechanism: 'aes-key-wrap' | 'aes-key-wrap-pad', kek: Buffer, keyMaterial: Buffer): Promise<Buffer>;
  knownAnswerDiversify(master: Buffer, kek: Buffer, data: Buffer): Promise<{ wrapped: Buffer; kcv: Buffer }>;
  /** AES-CMAC of `message` under the device key diversified by `data` (tests, device authentication). */
  deviceMac(masterLabel: string, data: Buffer, message: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}
