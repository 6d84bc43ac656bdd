/**
 * The device-key bundle a factory receives (NDJSON): a header line, then one line per device key. The
 * CA writes it (packages/ca), factories read it (packages/client); the format lives here, once.
 */
export interface DeviceKeyBundleHeader {
  readonly type: 'device-key-transport';
  readonly format: 'fleetpki-device-keys/1';
  /** Diversification construction (packages/hsm/src/device-keys.ts documents it). */
  readonly diversification: 'fleetpki-div-aescbc-v1';
  readonly kdf: 'fleetpki-ecdh-aescbc-v1';
  readonly wrap: 'aes-key-wrap-rfc3394';
  /** The HSM's ephemeral P-256 public key, base64 of the uncompressed point. */
  readonly ephemeralPublicKey: string;
  /** base64 of the KDF context (bound into the KEK). */
  readonly context: string;
  readonly manufacturer: string;
}

export interface DeviceKeyLine {
  readonly type: 'device-key';
  readonly eui64: string;
  readonly role: 'mac' | 'enc';
  readonly version: number;
  /** base64 of the RFC 3394 wrapped key. */
  readonly wrapped: string;
  /** hex of the key check value (first 3 bytes of AES-ECB(key, 0^16)). */
  readonly kcv: string;
}
