import { createPublicKey, verify } from 'node:crypto';

/**
 * Verifies an ECDSA P-256 signature by the key with this uncompressed point (04 || X || Y). The key goes
 * in as a JWK (x, y), the cheapest import OpenSSL 3 offers (~40 us less than SPKI DER); OpenSSL checks
 * the point is on the curve either way. Imports node:crypto only: a proof-of-possession thread
 * (possession-thread.ts) loads this module and nothing else of ours.
 */
export function verifyP256Point(point: Uint8Array, data: Uint8Array, signatureDer: Uint8Array): boolean {
  try {
    const p = Buffer.from(point.buffer, point.byteOffset, point.byteLength);
    const publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: p.subarray(1, 33).toString('base64url'), y: p.subarray(33, 65).toString('base64url') }, format: 'jwk' });
    return verify('sha256', data, publicKey, signatureDer);
  } catch {
    return false;
  }
}
