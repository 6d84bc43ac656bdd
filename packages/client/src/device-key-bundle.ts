import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { FleetError } from '@fleetpki/core';

/**
 * The device-key bundle a factory receives (NDJSON): a header line, then one line per device key.
 * This module is also the reference factory-side unwrap: plain node:crypto, no HSM, so a factory can
 * check its own implementation against it.
 */
export interface DeviceKeyBundleHeader {
  readonly type: 'device-key-transport';
  readonly format: 'fleetpki-device-keys/1';
  /** Diversification construction (see packages/hsm/src/device-keys.ts). */
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

const TRANSPORT_LABEL = 'fleetpki transport kek v1';

/** The transport KEK as the factory computes it from its private key and the bundle header. */
export function factoryTransportKek(header: DeviceKeyBundleHeader, factoryPrivateKey: KeyObject): Buffer {
  const point = Buffer.from(header.ephemeralPublicKey, 'base64');
  // SPKI of a P-256 point: the fixed 26-byte prefix, then the point.
  const spki = Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), point]);
  const z = diffieHellman({ privateKey: factoryPrivateKey, publicKey: createPublicKey({ key: spki, format: 'der', type: 'spki' }) });
  const input = createHash('sha256').update(TRANSPORT_LABEL).update(Buffer.from(header.context, 'base64')).digest();
  const cipher = createCipheriv('aes-256-cbc', z, Buffer.alloc(16)).setAutoPadding(false);
  return Buffer.concat([cipher.update(input), cipher.final()]);
}

export function keyCheckValue(key: Buffer): Buffer {
  const cipher = createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return Buffer.concat([cipher.update(Buffer.alloc(16)), cipher.final()]).subarray(0, 3);
}

/** Unwraps one device key and checks it against its KCV; a wrong factory key fails RFC 3394's integrity check. */
export function unwrapDeviceKey(kek: Buffer, line: DeviceKeyLine): Buffer {
  let key: Buffer;
  try {
    const decipher = createDecipheriv('id-aes256-wrap', kek, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
    key = Buffer.concat([decipher.update(Buffer.from(line.wrapped, 'base64')), decipher.final()]);
  } catch {
    throw new FleetError('DEVICE_KEY_UNWRAP_FAILED', `${line.eui64}/${line.role}: the wrapped key does not open under this transport key (wrong factory key, or another bundle's)`);
  }
  if (!keyCheckValue(key).equals(Buffer.from(line.kcv, 'hex'))) throw new FleetError('DEVICE_KEY_CHECK_FAILED', `${line.eui64}/${line.role}: the key check value does not match`);
  return key;
}
