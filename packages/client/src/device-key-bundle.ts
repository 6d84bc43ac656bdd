import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { FleetError, type DeviceKeyBundleHeader, type DeviceKeyLine } from '@fleetpki/core';

/** The reference factory-side unwrap of a device-key bundle: plain node:crypto, no HSM. */
export type { DeviceKeyBundleHeader, DeviceKeyLine } from '@fleetpki/core';

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
