import { ECDH } from 'node:crypto';
import { derTlv } from '../der.js';
import type { CborValue } from './cbor.js';
import { children, derUnsignedInteger, expectTag, octetAlignedBits, parseElement, seq, unconvertible, unsignedIntegerBytes, type Element } from './der-walk.js';
import { EC_CURVES, ECDSA_SIGNATURES, PUBLIC_KEY_ALGORITHMS, RSA_PUBLIC_KEY, SIGNATURE_ALGORITHMS, UNSIGNED_SIGNATURE, type CodeTable } from './registry.js';
import { asArray, asBytes, asInt, malformed } from './values.js';
import { decodeName, encodeName } from './name.js';

/** AlgorithmIdentifier: a registry int, or ~oid, or [~oid, parameters DER]. */
export function encodeAlgorithm(table: CodeTable, alg: Element, path: string): CborValue {
  const code = table.code(alg.der.toString('hex'));
  if (code !== undefined) return code;
  const [oid, params, extra] = children(expectTag(alg, 0x30, path), path);
  if (!oid || oid.tag !== 0x06 || extra) throw unconvertible(path, 'not an AlgorithmIdentifier');
  return params ? [oid.content, params.der] : oid.content;
}

export function decodeAlgorithm(table: CodeTable, v: unknown, path: string): Buffer {
  if (Buffer.isBuffer(v)) return seq(derTlv(0x06, v));
  if (Array.isArray(v)) {
    const [oid, params] = asArray(v, path, { min: 2, max: 2 });
    return seq(derTlv(0x06, asBytes(oid, `${path} algorithm`)), parseElement(asBytes(params, `${path} parameters`), path).der);
  }
  const code = asInt(v, path);
  const der = table.key(code);
  if (der === undefined) throw malformed(path, `unknown ${table.name} ${code}`);
  return Buffer.from(der, 'hex');
}

export const algorithmCode = (v: CborValue): number | undefined => (typeof v === 'number' ? v : undefined);

/** subjectPublicKey (draft, "Encoding of subjectPublicKey"): RSA as biguints, EC points optionally compressed. */
export function encodePublicKey(algorithm: number | undefined, bits: Buffer, compress: boolean, path: string): CborValue {
  if (algorithm === RSA_PUBLIC_KEY) {
    const rsa = parseElement(bits, path);
    const [n, e, extra] = children(expectTag(rsa, 0x30, path), path);
    if (!n || !e || extra) throw unconvertible(path, 'not an RSAPublicKey');
    const modulus = unsignedIntegerBytes(n, `${path} modulus`);
    const exponent = unsignedIntegerBytes(e, `${path} exponent`);
    return exponent.equals(Buffer.from([1, 0, 1])) ? modulus : [modulus, exponent];
  }
  const curve = algorithm === undefined ? undefined : EC_CURVES.get(algorithm);
  if (curve?.openssl && compress && bits.length === 2 * curve.bytes + 1 && bits[0] === 0x04) {
    const odd = (bits[bits.length - 1]! & 1) === 1;
    return Buffer.concat([Buffer.from([odd ? 0xfd : 0xfe]), bits.subarray(1, 1 + curve.bytes)]);
  }
  return bits;
}

export function decodePublicKey(algorithm: number | undefined, v: unknown, path: string): Buffer {
  if (algorithm === RSA_PUBLIC_KEY) {
    const [n, e] = Array.isArray(v) ? asArray(v, path, { min: 2, max: 2 }) : [v, Buffer.from([1, 0, 1])];
    return seq(derUnsignedInteger(asBytes(n, `${path} modulus`)), derUnsignedInteger(asBytes(e, `${path} exponent`)));
  }
  const bytes = asBytes(v, path);
  const curve = algorithm === undefined ? undefined : EC_CURVES.get(algorithm);
  if (curve && (bytes[0] === 0xfe || bytes[0] === 0xfd)) {
    if (bytes.length !== curve.bytes + 1) throw malformed(path, `a compressed point on this curve is ${curve.bytes + 1} bytes, found ${bytes.length}`);
    return decompressPoint(curve.openssl, Buffer.concat([Buffer.from([bytes[0] === 0xfe ? 0x02 : 0x03]), bytes.subarray(1)]), path);
  }
  return bytes;
}

/** The key as an SPKI for node:crypto and fleetpki's key checks: EC points uncompressed (SEC 1 2.3.3). */
export function canonicalSpki(algorithm: number | undefined, algorithmDer: Buffer, v: unknown, path: string): Buffer {
  let key = decodePublicKey(algorithm, v, path);
  const curve = algorithm === undefined ? undefined : EC_CURVES.get(algorithm);
  if (curve && (key[0] === 0x02 || key[0] === 0x03) && key.length === curve.bytes + 1) key = decompressPoint(curve.openssl, key, path);
  return spkiDer(algorithmDer, key);
}

/** SEC 1 2.3.4 through OpenSSL, which checks that the point is on the curve. */
export function decompressPoint(opensslCurve: string | undefined, compressed: Buffer, path: string): Buffer {
  if (!opensslCurve) throw unconvertible(path, 'OpenSSL cannot decompress a point on this curve');
  try {
    return Buffer.from(ECDH.convertKey(compressed, opensslCurve, undefined, undefined, 'uncompressed') as Buffer);
  } catch {
    throw malformed(path, 'the compressed point is not on the curve');
  }
}

/** Field size for r || s: the issuer's curve when known, else the smallest curve the integers fit. */
function ecdsaScalarBytes(r: Buffer, s: Buffer, issuerCurveBytes?: number): number {
  const longest = Math.max(r.length, s.length);
  if (issuerCurveBytes !== undefined && longest <= issuerCurveBytes) return issuerCurveBytes;
  return [32, 48, 64, 66].find((n) => n >= longest) ?? longest;
}

/** ECDSA-Sig-Value (DER) -> r || s (RFC 9053 2.1). */
export function ecdsaDerToRaw(der: Buffer, path: string, issuerCurveBytes?: number): Buffer {
  const [r, s, extra] = children(expectTag(parseElement(der, path), 0x30, path), path);
  if (!r || !s || extra) throw unconvertible(path, 'not an ECDSA-Sig-Value');
  const rb = unsignedIntegerBytes(r, `${path} r`);
  const sb = unsignedIntegerBytes(s, `${path} s`);
  const size = ecdsaScalarBytes(rb, sb, issuerCurveBytes);
  const pad = (b: Buffer) => Buffer.concat([Buffer.alloc(size - b.length), b]);
  return Buffer.concat([pad(rb), pad(sb)]);
}

export function ecdsaRawToDer(raw: Buffer, path: string): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw malformed(path, `an ECDSA signature is r || s of equal lengths, found ${raw.length} bytes`);
  const half = raw.length / 2;
  return seq(derUnsignedInteger(raw.subarray(0, half)), derUnsignedInteger(raw.subarray(half)));
}

/** Proof-of-possession algorithms of RFC 6955 (C509 14-16): DhSigStatic (draft, CSR signature algorithm). */
const DH_POP = new Set([14, 15, 16]);

function encodeDhSigStatic(bits: Buffer, path: string): CborValue {
  const parts = children(expectTag(parseElement(bits, path), 0x30, path), path);
  const hash = expectTag(parts[parts.length - 1], 0x04, `${path} hashValue`).content;
  if (parts.length === 1) return hash;
  const [issuerAndSerial, , extra] = parts;
  if (parts.length !== 2 || extra) throw unconvertible(path, 'not a DhSigStatic');
  const [issuer, serial, more] = children(expectTag(issuerAndSerial, 0x30, path), path);
  if (!issuer || !serial || more) throw unconvertible(path, 'not an IssuerAndSerialNumber');
  return [encodeName(issuer, `${path} issuer`), unsignedIntegerBytes(serial, `${path} serial`), hash];
}

function decodeDhSigStatic(v: unknown, path: string): Buffer {
  if (Buffer.isBuffer(v)) return seq(derTlv(0x04, v));
  const [issuer, serial, hash] = asArray(v, path, { min: 3, max: 3 });
  return seq(seq(decodeName(issuer, `${path} issuer`), derUnsignedInteger(asBytes(serial, `${path} serial`))), derTlv(0x04, asBytes(hash, `${path} hashValue`)));
}

export function encodeSignatureValue(algorithm: number | undefined, bits: Buffer, path: string, issuerCurveBytes?: number): CborValue {
  if (algorithm !== undefined && ECDSA_SIGNATURES.has(algorithm)) return ecdsaDerToRaw(bits, path, issuerCurveBytes);
  if (algorithm !== undefined && DH_POP.has(algorithm)) return encodeDhSigStatic(bits, path);
  if (algorithm === UNSIGNED_SIGNATURE && bits.length !== 0) throw unconvertible(path, 'id-alg-unsigned with a non-empty signature');
  return bits;
}

export function decodeSignatureValue(algorithm: number | undefined, v: unknown, path: string): Buffer {
  if (algorithm !== undefined && DH_POP.has(algorithm)) return decodeDhSigStatic(v, path);
  const bytes = asBytes(v, path);
  if (algorithm !== undefined && ECDSA_SIGNATURES.has(algorithm)) return ecdsaRawToDer(bytes, path);
  return bytes;
}

export const bitString = (bytes: Buffer): Buffer => derTlv(0x03, Buffer.concat([Buffer.from([0]), bytes]));

export function spkiDer(algorithm: Buffer, publicKey: Buffer): Buffer {
  return seq(algorithm, bitString(publicKey));
}

export function curveBytesOf(algorithm: number | undefined): number | undefined {
  return algorithm === undefined ? undefined : EC_CURVES.get(algorithm)?.bytes;
}

export { PUBLIC_KEY_ALGORITHMS, SIGNATURE_ALGORITHMS, octetAlignedBits };
