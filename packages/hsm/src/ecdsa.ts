/** P-256 SubjectPublicKeyInfo header (RFC 5480): id-ecPublicKey + prime256v1, then the 65-byte point. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
/** DER OID of prime256v1 as CKA_EC_PARAMS wants it. */
export const P256_EC_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

export function p256SpkiFromPoint(point: Uint8Array): Buffer {
  if (point.length !== 65 || point[0] !== 0x04) throw new Error(`expected a 65-byte uncompressed P-256 point, got ${point.length} bytes`);
  return Buffer.concat([P256_SPKI_PREFIX, point]);
}

/** CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v2.40 2.3.3); accept the bare point too. */
export function unwrapEcPoint(ecPoint: Buffer): Buffer {
  if (ecPoint.length === 67 && ecPoint[0] === 0x04 && ecPoint[1] === 65) return ecPoint.subarray(2);
  return ecPoint;
}

/**
 * CKM_ECDSA returns r||s (PKCS#11 v2.40 2.3.1); X.509 wants ECDSA-Sig-Value ::= SEQUENCE { r INTEGER,
 * s INTEGER } (RFC 3279 2.2.3). Hand-written because it is 15 lines on the hot path of every signature.
 */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  const half = raw.length / 2;
  const r = derInteger(raw.subarray(0, half));
  const s = derInteger(raw.subarray(half));
  const body = r.length + s.length;
  // For P-256 the body never exceeds 70 bytes, so the short length form always applies.
  return Buffer.concat([Buffer.from([0x30, body]), r, s]);
}

function derInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const pad = trimmed[0]! & 0x80 ? 1 : 0;
  const out = Buffer.alloc(2 + pad + trimmed.length);
  out[0] = 0x02;
  out[1] = pad + trimmed.length;
  out.set(trimmed, 2 + pad);
  return out;
}
