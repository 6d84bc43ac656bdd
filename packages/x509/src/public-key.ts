import { createPublicKey, type KeyObject } from 'node:crypto';
import { FleetError } from '@fleetpki/core';
import { InputRuleError, assertStrictDer, readPemOrBase64 } from './strict-input.js';

/** P-256 SubjectPublicKeyInfo header (RFC 5480): id-ecPublicKey + prime256v1, BIT STRING of 66 bytes. */
export const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
export const P256_SPKI_LENGTH = P256_SPKI_PREFIX.length + 65;

// NIST P-256 domain parameters (FIPS 186-4 D.1.2.3), for the point-on-curve check.
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

const KNOWN_KEY_TYPES: Record<string, string> = {
  '2a864886f70d010101': 'RSA',
  '2b6570': 'Ed25519',
  '2b6571': 'Ed448',
  '2b81040022': 'ECDSA P-384',
  '2b81040023': 'ECDSA P-521',
  '2b8104000a': 'ECDSA secp256k1',
};

export interface DevicePublicKey {
  /** 91-byte DER SubjectPublicKeyInfo with the uncompressed point. */
  readonly spki: Buffer;
  /** The 65-byte uncompressed point (04 || X || Y). */
  readonly point: Buffer;
}

function keyError(message: string): FleetError {
  return new FleetError('PUBLIC_KEY_INVALID', message, { httpStatus: 400 });
}

/**
 * SEC 1 v2 3.2.2.1 (partial public key validation): coordinates in [0, p-1] and y^2 = x^3 - 3x + b.
 * The identity has no uncompressed encoding, so a 65-byte 04||X||Y point cannot be it.
 */
export function isOnP256(point: Uint8Array): boolean {
  if (point.length !== 65 || point[0] !== 0x04) return false;
  const x = BigInt('0x' + Buffer.from(point.subarray(1, 33)).toString('hex'));
  const y = BigInt('0x' + Buffer.from(point.subarray(33)).toString('hex'));
  if (x >= P || y >= P) return false;
  return (y * y - (x * x * x - 3n * x + B)) % P === 0n;
}

/** Validates a P-256 point (uncompressed or compressed) and returns the canonical SPKI form. */
export function publicKeyFromPoint(point: Uint8Array): DevicePublicKey {
  let uncompressed: Buffer;
  if (point.length === 65 && point[0] === 0x04) uncompressed = Buffer.from(point);
  else if (point.length === 33 && (point[0] === 0x02 || point[0] === 0x03)) {
    // Decompression is OpenSSL's job; it also proves the x coordinate has a point on the curve.
    const compressedSpki = Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), point]);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: compressedSpki, format: 'der', type: 'spki' });
    } catch {
      throw keyError('the compressed P-256 point is not on the curve');
    }
    uncompressed = jwkPoint(key);
  } else throw keyError(`a P-256 public key point is 65 bytes uncompressed (04||X||Y) or 33 compressed; got ${point.length} bytes`);
  if (!isOnP256(uncompressed)) throw keyError('the public key point is not on the P-256 curve');
  return { spki: Buffer.concat([P256_SPKI_PREFIX, uncompressed]), point: uncompressed };
}

function jwkPoint(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** Parses a DER SubjectPublicKeyInfo and insists on P-256; names the key type it refuses. */
export function publicKeyFromSpki(spki: Uint8Array): DevicePublicKey {
  const der = Buffer.from(spki);
  if (der.length === P256_SPKI_LENGTH && der.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX)) {
    return publicKeyFromPoint(der.subarray(P256_SPKI_PREFIX.length));
  }
  const compressedPrefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
  if (der.length === compressedPrefix.length + 33 && der.subarray(0, compressedPrefix.length).equals(compressedPrefix)) {
    return publicKeyFromPoint(der.subarray(compressedPrefix.length));
  }
  const hex = der.toString('hex');
  for (const [oidHex, name] of Object.entries(KNOWN_KEY_TYPES)) {
    if (hex.includes('06' + (oidHex.length / 2).toString(16).padStart(2, '0') + oidHex)) {
      throw new FleetError('KEY_TYPE_UNSUPPORTED', `${name} keys are not accepted; device keys must be ECDSA P-256 (prime256v1)`, { httpStatus: 400 });
    }
  }
  throw keyError('not a P-256 SubjectPublicKeyInfo (expected id-ecPublicKey with prime256v1)');
}

/**
 * Accepts what a factory is likely to send for a raw public key: PEM "PUBLIC KEY", base64 or hex of a
 * DER SubjectPublicKeyInfo, or base64/hex of the bare point.
 */
export function parseDevicePublicKey(input: string): DevicePublicKey {
  const text = input;
  if (text.length === 0 || text.length > 4096) throw keyError(`public key must be 1-4096 characters, got ${text.length}`);
  let bytes: Buffer;
  try {
    // Hex only as exactly a point (130 or 66 digits) or an SPKI; otherwise one strict PEM block or canonical base64.
    if (/^(04|02|03)[0-9a-fA-F]+$/.test(text) && (text.length === 130 || text.length === 66)) bytes = Buffer.from(text, 'hex');
    else if (/^30[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0) bytes = Buffer.from(text, 'hex');
    else bytes = readPemOrBase64(text, ['PUBLIC KEY'], 'the public key');
    if (bytes[0] === 0x30) assertStrictDer(bytes, 'the public key');
  } catch (err) {
    if (err instanceof InputRuleError) throw new FleetError('PUBLIC_KEY_INVALID', `${err.message} [${err.rule}]`, { httpStatus: 400, details: { rule: err.rule, ...(err.offset !== undefined ? { offset: err.offset } : {}) } });
    throw err;
  }
  if (bytes[0] === 0x30) return publicKeyFromSpki(bytes);
  return publicKeyFromPoint(bytes);
}
