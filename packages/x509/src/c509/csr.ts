import { createPublicKey, verify } from 'node:crypto';
import { derTlv } from '../der.js';
import { Tag, decodeStrict, encodeItem, encodeSequence, type CborValue } from './cbor.js';
import { children, derUnsignedInteger, expectTag, octetAlignedBits, parseElement, seq, unconvertible, unsignedIntegerBytes, type Element } from './der-walk.js';
import { C509Error } from './errors.js';
import { decodeExtensions, encodeExtensions } from './extensions.js';
import { ecdsaDerToRaw, algorithmCode, canonicalSpki, bitString, decodeAlgorithm, decodePublicKey, decodeSignatureValue, encodeAlgorithm, encodePublicKey, encodeSignatureValue, spkiDer, curveBytesOf, PUBLIC_KEY_ALGORITHMS, SIGNATURE_ALGORITHMS } from './fields.js';
import { decodeName, encodeName } from './name.js';
import { CR_ATTRIBUTES } from './registry.js';
import { asArray, asBytes, asInt, asText, malformed, pairs } from './values.js';
import { C509_NATIVE, C509_REENCODED, c509ToX509, x509ToC509, type C509EncodeOptions } from './certificate.js';

/** C509 Certification Request (draft, section "C509 Certification Request"): a 7-item array. */
const EXTENSION_REQUEST = 0;
const CHALLENGE_PASSWORD = 1;
const POSSESSION_STATEMENT = 2;
const PRINTABLE_PASSWORD_TAG = 121;
const VERSION_1 = Buffer.from('020100', 'hex');

/** PrivateKeyPossessionStatement (RFC 9883): [issuer, serial, C509 certificate bytes / null]. */
function encodePossessionStatement(value: Element, path: string, options: C509EncodeOptions): CborValue {
  const [signer, cert, extra] = children(expectTag(value, 0x30, path), path);
  const [issuer, serial, more] = children(expectTag(signer, 0x30, `${path} signer`), `${path} signer`);
  if (!issuer || !serial || more || extra) throw unconvertible(path, 'not a PrivateKeyPossessionStatement');
  return [encodeName(issuer, `${path} issuer`), unsignedIntegerBytes(serial, `${path} serial`), cert ? x509ToC509(cert.der, options) : null];
}

function decodePossessionStatement(v: unknown, path: string): Buffer {
  const [issuer, serial, cert] = asArray(v, path, { min: 3, max: 3 });
  const signer = seq(decodeName(issuer, `${path} issuer`), derUnsignedInteger(asBytes(serial, `${path} serial`)));
  return seq(signer, ...(cert === null ? [] : [c509ToX509(asBytes(cert, `${path} cert`))]));
}

function encodeAttributes(attributes: readonly Element[], path: string, options: C509EncodeOptions): CborValue[] {
  return attributes.flatMap((attr, i) => {
    const attrPath = `${path} ${i + 1}`;
    const [type, values, extra] = children(expectTag(attr, 0x30, attrPath), attrPath);
    if (!type || type.tag !== 0x06 || !values || values.tag !== 0x31 || extra) throw unconvertible(attrPath, 'not an Attribute');
    const [value, more] = children(values, attrPath);
    if (!value || more) throw unconvertible(attrPath, 'an attribute with several values is not supported');
    const code = CR_ATTRIBUTES.code(type.content.toString('hex'));
    if (code === EXTENSION_REQUEST) return [code, encodeExtensions(value, `${attrPath} extensionRequest`)];
    if (code === CHALLENGE_PASSWORD && value.tag === 0x0c) return [code, value.content.toString('utf8')];
    if (code === POSSESSION_STATEMENT) return [code, encodePossessionStatement(value, attrPath, options)];
    if (code === CHALLENGE_PASSWORD && value.tag === 0x13) return [code, new Tag(value.content.toString('latin1'), PRINTABLE_PASSWORD_TAG)];
    throw new C509Error('C509_UNSUPPORTED', `${attrPath}: attribute ${type.content.toString('hex')} has no C509 encoding in fleetpki`);
  });
}

function decodeAttributes(v: unknown, path: string): Buffer {
  const list = asArray(v, path, { even: true });
  const attributes = list.length === 0 ? [] : pairs(list, path).map(([type, value], i) => {
    const attrPath = `${path} ${i + 1}`;
    const code = asInt(type, `${attrPath} type`);
    const oidHex = CR_ATTRIBUTES.key(code);
    if (oidHex === undefined) throw malformed(attrPath, `unknown certification request attribute ${code}`);
    const oid = derTlv(0x06, Buffer.from(oidHex, 'hex'));
    if (code === EXTENSION_REQUEST) return seq(oid, derTlv(0x31, decodeExtensions(value, attrPath) ?? seq()));
    if (code === POSSESSION_STATEMENT) return seq(oid, derTlv(0x31, decodePossessionStatement(value, attrPath)));
    if (code === CHALLENGE_PASSWORD) {
      const printable = value instanceof Tag && value.tag === PRINTABLE_PASSWORD_TAG;
      const text = asText(printable ? (value as Tag).value : value, attrPath);
      return seq(oid, derTlv(0x31, derTlv(printable ? 0x13 : 0x0c, Buffer.from(text, printable ? 'latin1' : 'utf8'))));
    }
    throw new C509Error('C509_UNSUPPORTED', `${attrPath}: certification request attribute ${code} is not implemented in fleetpki`);
  });
  return derTlv(0xa0, Buffer.concat(attributes));
}

/** PKCS#10 DER -> C509 certification request of type 3; the DER comes back byte for byte. */
export function pkcs10ToC509(der: Uint8Array, options: C509EncodeOptions = {}): Buffer {
  const original = Buffer.from(der);
  const [info, sigAlg, sigBits, extra] = children(expectTag(parseElement(original, 'certificationRequest'), 0x30, 'certificationRequest'), 'certificationRequest');
  if (!info || !sigAlg || !sigBits || extra) throw new C509Error('C509_MALFORMED', 'certificationRequest: expected info, algorithm and signature');
  const [version, subject, spki, attributes, more] = children(expectTag(info, 0x30, 'certificationRequestInfo'), 'certificationRequestInfo');
  if (!version?.der.equals(VERSION_1)) throw unconvertible('version', 'only version 1 (0) requests exist');
  if (!spki || !attributes || attributes.tag !== 0xa0 || more) throw new C509Error('C509_MALFORMED', 'certificationRequestInfo: expected subject, key and attributes');
  const [pkAlg, pkBits] = children(expectTag(spki, 0x30, 'subjectPublicKeyInfo'), 'subjectPublicKeyInfo');
  const signatureAlgorithm = encodeAlgorithm(SIGNATURE_ALGORITHMS, expectTag(sigAlg, 0x30, 'signatureAlgorithm'), 'signatureAlgorithm');
  const keyAlg = encodeAlgorithm(PUBLIC_KEY_ALGORITHMS, expectTag(pkAlg, 0x30, 'subjectPublicKeyAlgorithm'), 'subjectPublicKeyAlgorithm');
  const c509 = encodeItem([
    C509_REENCODED,
    signatureAlgorithm,
    encodeName(subject!, 'subject'),
    keyAlg,
    encodePublicKey(algorithmCode(keyAlg), octetAlignedBits(expectTag(pkBits, 0x03, 'subjectPublicKey'), 'subjectPublicKey'), options.compressPoints !== false, 'subjectPublicKey'),
    encodeAttributes(children(attributes, 'attributes'), 'attributes', options),
    encodeSignatureValue(algorithmCode(signatureAlgorithm), octetAlignedBits(expectTag(sigBits, 0x03, 'signatureValue'), 'signatureValue'), 'signatureValue', curveBytesOf(algorithmCode(keyAlg))),
  ]);
  if (!c509ToPkcs10(c509).equals(original)) throw unconvertible('certificationRequest', 'the C509 form does not give the DER back byte for byte');
  return c509;
}

export interface ParsedC509Request {
  readonly type: number;
  /** DER SubjectPublicKeyInfo of the requested key. */
  readonly subjectPublicKeyInfo: Buffer;
  /** For type 3, the PKCS#10 DER it re-encodes. */
  readonly pkcs10?: Buffer;
  readonly signatureAlgorithm: CborValue;
  /** Items 0-5 as a CBOR sequence: what a type-2 signature covers. */
  readonly tbsCbor: Buffer;
  readonly signatureValue: Buffer;
}

function readRequestItems(c509: Uint8Array): unknown[] {
  return asArray(decodeStrict(c509, 'C509 certification request'), 'C509 certification request', { min: 7, max: 7 });
}

function requestInfo(items: unknown[]): Buffer {
  const keyAlg = algorithmCode(items[3] as CborValue);
  return seq(
    VERSION_1,
    decodeName(items[2], 'subject'),
    spkiDer(decodeAlgorithm(PUBLIC_KEY_ALGORITHMS, items[3], 'subjectPublicKeyAlgorithm'), decodePublicKey(keyAlg, items[4], 'subjectPublicKey')),
    decodeAttributes(items[5], 'attributes'),
  );
}

/** C509 certification request of type 3 -> the PKCS#10 DER it re-encodes. */
export function c509ToPkcs10(c509: Uint8Array): Buffer {
  const items = readRequestItems(c509);
  const type = asInt(items[0], 'type');
  if (type !== C509_REENCODED) throw new C509Error(type === C509_NATIVE ? 'C509_UNCONVERTIBLE' : 'C509_MALFORMED', `type: ${type === C509_NATIVE ? 'a natively signed request (type 2) has no PKCS#10 form' : `unknown request type ${type}`}`);
  const sigAlg = decodeAlgorithm(SIGNATURE_ALGORITHMS, items[1], 'signatureAlgorithm');
  return seq(requestInfo(items), sigAlg, bitString(decodeSignatureValue(algorithmCode(items[1] as CborValue), items[6], 'signatureValue')));
}

/** Reads a C509 request of either type; for type 2 also checks its ECDSA signature over the CBOR. */
export function parseC509Request(c509: Uint8Array): ParsedC509Request {
  const items = readRequestItems(c509);
  const type = asInt(items[0], 'type');
  if (type !== C509_NATIVE && type !== C509_REENCODED) throw malformed('type', `unknown request type ${type}`);
  requestInfo(items); // every field's form
  decodeAlgorithm(SIGNATURE_ALGORITHMS, items[1], 'signatureAlgorithm');
  const keyAlg = algorithmCode(items[3] as CborValue);
  return {
    type,
    subjectPublicKeyInfo: canonicalSpki(keyAlg, decodeAlgorithm(PUBLIC_KEY_ALGORITHMS, items[3], 'subjectPublicKeyAlgorithm'), items[4], 'subjectPublicKey'),
    ...(type === C509_REENCODED ? { pkcs10: c509ToPkcs10(c509) } : {}),
    signatureAlgorithm: items[1] as CborValue,
    tbsCbor: encodeSequence(items.slice(0, 6) as CborValue[]),
    signatureValue: asBytes(items[6], 'signatureValue'),
  };
}

/** Type 2 proof of possession: ECDSA with SHA-256 (C509 algorithm 0) over the CBOR TBS. */
export function verifyNativeC509RequestP256(request: ParsedC509Request): boolean {
  if (request.type !== C509_NATIVE || request.signatureAlgorithm !== 0) return false;
  const key = createPublicKey({ key: request.subjectPublicKeyInfo, format: 'der', type: 'spki' });
  return verify('sha256', request.tbsCbor, { key, dsaEncoding: 'ieee-p1363' }, request.signatureValue);
}

/**
 * A natively signed (type 2) request for a P-256 key, as a meter that speaks only CBOR would make it:
 * empty subject, compressed point, no attributes, ECDSA with SHA-256 over the CBOR TBS. `signTbs`
 * returns a DER ECDSA signature (what node:crypto and the HSM give).
 */
export function buildNativeC509RequestP256(publicKeySpki: Buffer, signTbs: (tbs: Buffer) => Buffer): Buffer {
  const spki = parseElement(publicKeySpki, 'subjectPublicKeyInfo');
  const [, bits] = children(spki, 'subjectPublicKeyInfo');
  const point = octetAlignedBits(bits!, 'subjectPublicKey');
  if (point.length !== 65 || point[0] !== 0x04) throw unconvertible('subjectPublicKey', 'expected an uncompressed P-256 point');
  const compressed = Buffer.concat([Buffer.from([(point[64]! & 1) === 1 ? 0x03 : 0x02]), point.subarray(1, 33)]);
  const items: CborValue[] = [C509_NATIVE, 0, [], 1, compressed, []];
  const tbs = encodeSequence(items);
  return encodeItem([...items, ecdsaDerToRaw(signTbs(tbs), 'signature', 32)]);
}
