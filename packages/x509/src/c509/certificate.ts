import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { derTlv } from '../der.js';
import { decodeStrict, encodeItem, encodeSequence, type CborValue } from './cbor.js';
import { children, expectTag, octetAlignedBits, parseElement, seq, unconvertible, unsignedIntegerBytes, derUnsignedInteger, type Element } from './der-walk.js';
import { C509Error } from './errors.js';
import { decodeExtensions, encodeExtensions } from './extensions.js';
import { algorithmCode, canonicalSpki, curveBytesOf, decodeAlgorithm, decodePublicKey, decodeSignatureValue, encodeAlgorithm, encodePublicKey, encodeSignatureValue, spkiDer, bitString, PUBLIC_KEY_ALGORITHMS, SIGNATURE_ALGORITHMS } from './fields.js';
import { decodeName, encodeName } from './name.js';
import { decodeTime, encodeTime } from './validity.js';
import { asArray, asInt, malformed } from './values.js';

/** c509CertificateType (draft, C509 Certificate Types registry). */
export const C509_NATIVE = 2;
export const C509_REENCODED = 3;
const V3 = Buffer.from('a003020102', 'hex');
const TBS_FIELDS = ['type', 'serialNumber', 'signatureAlgorithm', 'issuer', 'notBefore', 'notAfter', 'subject', 'subjectPublicKeyAlgorithm', 'subjectPublicKey', 'extensions', 'signatureValue'];

export interface C509EncodeOptions {
  /**
   * Compress uncompressed EC points (0xfe/0xfd). The draft allows both forms for type 3; compressing
   * saves 32 bytes on P-256 and is the default. The tv03 test vectors keep the 0x04 form.
   */
  readonly compressPoints?: boolean;
}

interface TbsItems {
  readonly items: CborValue[];
  /** tbsCertificate.signature, which the outer signatureAlgorithm must repeat (RFC 5280 4.1.1.2). */
  readonly signatureDer: Buffer;
  readonly signatureAlgorithm: number | undefined;
  readonly issuerCurveBytes: number | undefined;
}

/** The ten TBSCertificate items of a C509 certificate, from a DER TBSCertificate. */
function tbsItems(tbs: Element, type: number, options: C509EncodeOptions): TbsItems {
  const [version, serial, signature, issuer, validity, subject, spki, ...rest] = children(expectTag(tbs, 0x30, 'tbsCertificate'), 'tbsCertificate');
  if (!version || !version.der.equals(V3)) throw unconvertible('version', 'only X.509 v3 certificates can be expressed');
  if (!spki) throw new C509Error('C509_MALFORMED', 'tbsCertificate: too few fields');
  for (const field of rest) {
    if ((field.tag & 0xdf) === 0x81) throw unconvertible('issuerUniqueID', 'not supported by C509');
    if ((field.tag & 0xdf) === 0x82) throw unconvertible('subjectUniqueID', 'not supported by C509');
  }
  const extensions = rest.find((f) => f.tag === 0xa3);
  if (rest.length > (extensions ? 1 : 0)) throw new C509Error('C509_MALFORMED', 'tbsCertificate: unexpected fields after subjectPublicKeyInfo');
  const [notBefore, notAfter, extraTime] = children(expectTag(validity!, 0x30, 'validity'), 'validity');
  if (!notBefore || !notAfter || extraTime) throw new C509Error('C509_MALFORMED', 'validity: expected two times');
  const [pkAlg, pkBits, extraKey] = children(expectTag(spki, 0x30, 'subjectPublicKeyInfo'), 'subjectPublicKeyInfo');
  if (!pkAlg || !pkBits || extraKey) throw new C509Error('C509_MALFORMED', 'subjectPublicKeyInfo: expected algorithm and key');
  const sigAlg = encodeAlgorithm(SIGNATURE_ALGORITHMS, expectTag(signature, 0x30, 'signature'), 'signature');
  const keyAlg = encodeAlgorithm(PUBLIC_KEY_ALGORITHMS, pkAlg, 'subjectPublicKeyAlgorithm');
  const native = type === C509_NATIVE;
  const selfIssued = issuer!.der.equals(subject!.der);
  const items: CborValue[] = [
    type,
    unsignedIntegerBytes(serial!, 'serialNumber'),
    sigAlg,
    selfIssued ? null : encodeName(issuer!, 'issuer'),
    encodeTime(notBefore, 'notBefore', false),
    encodeTime(notAfter, 'notAfter', true),
    encodeName(expectTag(subject, 0x30, 'subject'), 'subject'),
    keyAlg,
    encodePublicKey(algorithmCode(keyAlg), octetAlignedBits(expectTag(pkBits, 0x03, 'subjectPublicKey'), 'subjectPublicKey'), native || options.compressPoints !== false, 'subjectPublicKey'),
    encodeExtensions(extensions ? children(extensions, 'extensions')[0] : undefined, 'extensions'),
  ];
  if (native) assertNativeForm(items);
  return { items, signatureDer: signature!.der, signatureAlgorithm: algorithmCode(sigAlg), issuerCurveBytes: selfIssued ? curveBytesOf(algorithmCode(keyAlg)) : undefined };
}

/** Natively signed C509 uses only specific encodings and non-negative attribute types (draft 3.1, 3.8). */
function assertNativeForm(items: CborValue[]): void {
  for (const index of [3, 6]) {
    const name = items[index];
    if (Array.isArray(name)) for (let i = 0; i < name.length; i += 2) if (typeof name[i] === 'number' && (name[i] as number) < 0) name[i] = -(name[i] as number);
  }
  const extensions = items[9];
  if (Array.isArray(extensions) && extensions.some((id, i) => i % 2 === 0 && typeof id !== 'number')) {
    throw unconvertible('extensions', 'a natively signed C509 certificate may use only extensions with a C509 encoding');
  }
  if (typeof items[2] !== 'number' || typeof items[7] !== 'number') throw unconvertible('signatureAlgorithm', 'a natively signed C509 certificate needs registered algorithms');
}

/** The first certificate field whose DER differs between the original and the round trip, for errors. */
function firstDifferingField(original: Buffer, back: Buffer): string {
  const names = ['version', 'serialNumber', 'signature', 'issuer', 'validity', 'subject', 'subjectPublicKeyInfo', 'extensions'];
  const fields = (der: Buffer) => {
    const [tbs, alg, sig] = children(parseElement(der, 'certificate'), 'certificate');
    return [...children(tbs!, 'tbsCertificate').map((f) => f.der), alg!.der, sig!.der];
  };
  const a = fields(original);
  const b = fields(back);
  const index = a.findIndex((field, i) => !b[i] || !field.equals(b[i]!));
  if (names[index] === 'validity') {
    const [nb] = children(parseElement(a[index]!, 'validity'), 'validity');
    const [nbBack] = children(parseElement(b[index]!, 'validity'), 'validity');
    return nb!.der.equals(nbBack!.der) ? 'notAfter' : 'notBefore';
  }
  return index < 0 ? 'certificate' : (names[index] ?? (index === a.length - 2 ? 'signatureAlgorithm' : 'signatureValue'));
}

/** DER X.509 certificate -> C509 certificate of type 3 (re-encoded); the DER comes back byte for byte. */
export function x509ToC509(der: Uint8Array, options: C509EncodeOptions = {}): Buffer {
  const original = Buffer.from(der);
  const [tbs, sigAlg, sigBits, extra] = children(expectTag(parseElement(original, 'certificate'), 0x30, 'certificate'), 'certificate');
  if (!tbs || !sigAlg || !sigBits || extra) throw new C509Error('C509_MALFORMED', 'certificate: expected tbsCertificate, signatureAlgorithm, signatureValue');
  const { items, signatureDer, signatureAlgorithm, issuerCurveBytes } = tbsItems(tbs, C509_REENCODED, options);
  if (!sigAlg.der.equals(signatureDer)) throw unconvertible('signatureAlgorithm', 'differs from tbsCertificate.signature');
  items.push(encodeSignatureValue(signatureAlgorithm, octetAlignedBits(expectTag(sigBits, 0x03, 'signatureValue'), 'signatureValue'), 'signatureValue', issuerCurveBytes));
  const c509 = encodeItem(items);
  const back = c509ToX509(c509);
  if (!back.equals(original)) {
    throw unconvertible(firstDifferingField(original, back), 'the C509 form does not give this DER back byte for byte (e.g. a GeneralizedTime where RFC 5280 wants UTCTime, or a non-DER encoding)');
  }
  return c509;
}

function readItems(c509: Uint8Array): unknown[] {
  const items = asArray(decodeStrict(c509, 'C509 certificate'), 'C509 certificate', { min: 11, max: 11 });
  return items;
}

/** C509 certificate of type 3 -> the original DER X.509 certificate. */
export function c509ToX509(c509: Uint8Array): Buffer {
  const items = readItems(c509);
  const type = asInt(items[0], 'type');
  if (type === C509_NATIVE) throw new C509Error('C509_UNCONVERTIBLE', 'type: a natively signed C509 certificate (type 2) has no DER form; its signature covers the CBOR');
  if (type !== C509_REENCODED) throw malformed('type', `unknown C509 certificate type ${type}`);
  const sigAlgDer = decodeAlgorithm(SIGNATURE_ALGORITHMS, items[2], 'signatureAlgorithm');
  const keyAlg = algorithmCode(items[7] as CborValue);
  const subject = decodeName(items[6], 'subject');
  const extensions = decodeExtensions(items[9], 'extensions');
  const tbs = seq(
    V3,
    derUnsignedInteger(asBytesOrMalformed(items[1], 'serialNumber')),
    sigAlgDer,
    items[3] === null ? subject : decodeName(items[3], 'issuer'),
    seq(decodeTime(items[4], 'notBefore', false), decodeTime(items[5], 'notAfter', true)),
    subject,
    spkiDer(decodeAlgorithm(PUBLIC_KEY_ALGORITHMS, items[7], 'subjectPublicKeyAlgorithm'), decodePublicKey(keyAlg, items[8], 'subjectPublicKey')),
    ...(extensions ? [derTlv(0xa3, extensions)] : []),
  );
  return seq(tbs, sigAlgDer, bitString(decodeSignatureValue(algorithmCode(items[2] as CborValue), items[10], 'signatureValue')));
}

function asBytesOrMalformed(v: unknown, path: string): Buffer {
  if (!Buffer.isBuffer(v)) throw malformed(path, 'expected a byte string');
  return v;
}

/** The CBOR TBS (a sequence of ten items, no array header) of a natively signed certificate. */
export function nativeC509Tbs(tbsDer: Uint8Array): Buffer {
  return encodeSequence(tbsItems(parseElement(Buffer.from(tbsDer), 'tbsCertificate'), C509_NATIVE, {}).items);
}

/** Joins a native TBS and its signature value (r || s for ECDSA) into the C509Certificate array. */
export function assembleNativeC509(tbsCbor: Buffer, signatureValue: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x80 | TBS_FIELDS.length]), tbsCbor, encodeItem(signatureValue)]);
}

export interface ParsedC509 {
  readonly type: number;
  readonly serial: Buffer;
  /** The signed bytes of a type-2 certificate: items 0-9 as a CBOR sequence. */
  readonly tbsCbor: Buffer;
  readonly signatureAlgorithm: CborValue;
  readonly signatureValue: Buffer;
  /** DER SubjectPublicKeyInfo of the subject key. */
  readonly subjectPublicKeyInfo: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date | null;
}

/** Reads either type, checking each field's form; the signature is not checked. */
export function parseC509(c509: Uint8Array): ParsedC509 {
  const items = readItems(c509);
  const type = asInt(items[0], 'type');
  if (type !== C509_NATIVE && type !== C509_REENCODED) throw malformed('type', `unknown C509 certificate type ${type}`);
  decodeName(items[6], 'subject');
  if (items[3] !== null) decodeName(items[3], 'issuer');
  decodeExtensions(items[9], 'extensions');
  decodeAlgorithm(SIGNATURE_ALGORITHMS, items[2], 'signatureAlgorithm');
  const keyAlg = algorithmCode(items[7] as CborValue);
  const time = (v: unknown, path: string, allowNull: boolean) => { decodeTime(v, path, allowNull); return v === null ? null : new Date((v as number) * 1000); };
  return {
    type,
    serial: asBytesOrMalformed(items[1], 'serialNumber'),
    tbsCbor: encodeSequence(items.slice(0, 10) as CborValue[]),
    signatureAlgorithm: items[2] as CborValue,
    signatureValue: asBytesOrMalformed(items[10], 'signatureValue'),
    subjectPublicKeyInfo: canonicalSpki(keyAlg, decodeAlgorithm(PUBLIC_KEY_ALGORITHMS, items[7], 'subjectPublicKeyAlgorithm'), items[8], 'subjectPublicKey'),
    notBefore: time(items[4], 'notBefore', false)!,
    notAfter: time(items[5], 'notAfter', true),
  };
}

/** node:crypto verify parameters per C509 signature algorithm, for the algorithms fleetpki can check. */
const VERIFY: ReadonlyMap<number, { hash: string | null; dsaEncoding?: 'ieee-p1363'; pss?: number }> = new Map([
  [0, { hash: 'sha256', dsaEncoding: 'ieee-p1363' }], [1, { hash: 'sha384', dsaEncoding: 'ieee-p1363' }], [2, { hash: 'sha512', dsaEncoding: 'ieee-p1363' }],
  [-255, { hash: 'sha1', dsaEncoding: 'ieee-p1363' }], [12, { hash: null }], [13, { hash: null }],
  [-256, { hash: 'sha1' }], [23, { hash: 'sha256' }], [24, { hash: 'sha384' }], [25, { hash: 'sha512' }],
  [26, { hash: 'sha256', pss: 32 }], [27, { hash: 'sha384', pss: 48 }], [28, { hash: 'sha512', pss: 64 }],
]);

/** Checks a natively signed (type 2) C509 certificate's signature over its CBOR TBS with the issuer's key. */
export function verifyNativeC509(c509: Uint8Array | ParsedC509, issuerKey: KeyObject | Buffer): boolean {
  const parsed = c509 instanceof Uint8Array ? parseC509(c509) : c509;
  if (parsed.type !== C509_NATIVE) throw new C509Error('C509_UNCONVERTIBLE', 'type: only a type 2 certificate is signed over its CBOR');
  const params = typeof parsed.signatureAlgorithm === 'number' ? VERIFY.get(parsed.signatureAlgorithm) : undefined;
  if (!params) throw new C509Error('C509_UNSUPPORTED', `signatureAlgorithm: fleetpki cannot verify C509 signature algorithm ${String(parsed.signatureAlgorithm)}`);
  const key = Buffer.isBuffer(issuerKey) ? createPublicKey({ key: issuerKey, format: 'der', type: 'spki' }) : issuerKey;
  const options = { key, ...(params.dsaEncoding ? { dsaEncoding: params.dsaEncoding } : {}), ...(params.pss ? { padding: 6, saltLength: params.pss } : {}) };
  return verify(params.hash, parsed.tbsCbor, options, parsed.signatureValue);
}

export const C509_TBS_FIELDS: readonly string[] = TBS_FIELDS;
