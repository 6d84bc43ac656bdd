/**
 * Every signature the HSM returns is checked before anything is built on it (a faulty HSM or a fault
 * attack must not produce a certificate, CRL, OCSP response or audit seal that fails to verify, or that
 * leaks the key through a bad nonce): the same policy for every signer.
 *
 * - `every: 1` verifies each signature with the key's public key (node:crypto, on the signing thread);
 * - `every: N` verifies one in N, and checks r and s of every signature against the curve order.
 *
 * FLEETPKI_SIGNATURE_CHECK sets it ("all", the default, or "1-in-N"); `pnpm bench sign` measures both.
 */
export interface SignatureCheck {
  readonly every: number;
}

export const CHECK_EVERY_SIGNATURE: SignatureCheck = { every: 1 };

/** The order n of P-256 (SEC 2 2.4.2). */
const P256_N = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');

/** r and s of a raw P-256 ECDSA signature (r || s) both in [1, n-1] (FIPS 186-4 6.4). */
export function inP256ScalarRange(raw: Uint8Array): boolean {
  if (raw.length !== 64) return false;
  const r = raw.subarray(0, 32);
  const s = raw.subarray(32);
  return !isZero(r) && !isZero(s) && Buffer.compare(r, P256_N) < 0 && Buffer.compare(s, P256_N) < 0;
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}
