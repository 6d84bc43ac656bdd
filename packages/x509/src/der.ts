/**
 * The few DER primitives the per-device hot path needs (X.690 8.1.3 lengths, 8.3 integers, 11.7 times).
 * Hand-written on purpose: asn1js builds an object graph per call (~1 ms a certificate); these write bytes.
 * Everything that is not on the hot path is built and checked with asn1js/pkijs.
 */
export function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length < 0x100) return Buffer.from([0x81, length]);
  if (length < 0x10000) return Buffer.from([0x82, length >> 8, length & 0xff]);
  return Buffer.from([0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
}

export function derTlv(tag: number, value: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(value.length), value]);
}

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
} as const;

/** RFC 5280 4.1.2.5: UTCTime for 1950-2049, GeneralizedTime otherwise; seconds precision, always Z. */
export function timeTag(date: Date): number {
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050 ? TAG.UTC_TIME : TAG.GENERALIZED_TIME;
}

export function encodeTimeValue(date: Date): string {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z';
  return timeTag(date) === TAG.UTC_TIME ? digits.slice(2) : digits;
}

export function derTime(date: Date): Buffer {
  return derTlv(timeTag(date), Buffer.from(encodeTimeValue(date), 'ascii'));
}

/** ecdsa-with-SHA256 AlgorithmIdentifier, parameters absent (RFC 5758 3.2). */
export const ECDSA_WITH_SHA256_ALGID = Buffer.from('300a06082a8648ce3d040302', 'hex');

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING } (RFC 5280 4.1). */
export function assembleSignedCertificate(tbs: Uint8Array, signatureDer: Uint8Array): Buffer {
  const bitString = derTlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), signatureDer]));
  return derTlv(TAG.SEQUENCE, Buffer.concat([tbs, ECDSA_WITH_SHA256_ALGID, bitString]));
}

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/**
 * A DER value built in two passes: `derNode` adds up lengths, `encodeDer` writes everything into one
 * buffer. For structures assembled thousands of times a second (OCSP responses while revocations are
 * re-signed): `derTlv` copies the content once per nesting level and allocates three buffers each time,
 * which cost the responder's one JavaScript thread more than the rest of a response.
 */
export type DerPart = Uint8Array | DerNode;

export interface DerNode {
  readonly tag: number;
  readonly parts: readonly DerPart[];
  /** Length of the content (without this node's tag and length octets). */
  readonly length: number;
}

function lengthOctets(length: number): number {
  return length < 0x80 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 4;
}

export function derNode(tag: number, ...parts: DerPart[]): DerNode {
  let length = 0;
  for (const p of parts) length += p instanceof Uint8Array ? p.length : 1 + lengthOctets(p.length) + p.length;
  return { tag, parts, length };
}

function writeNode(out: Buffer, at: number, node: DerNode): number {
  out[at++] = node.tag;
  const n = node.length;
  if (n < 0x80) {
    out[at++] = n;
  } else {
    const octets = lengthOctets(n) - 1;
    out[at++] = 0x80 | octets;
    for (let shift = 8 * (octets - 1); shift >= 0; shift -= 8) out[at++] = (n >> shift) & 0xff;
  }
  for (const p of node.parts) {
    if (p instanceof Uint8Array) {
      out.set(p, at);
      at += p.length;
    } else at = writeNode(out, at, p);
  }
  return at;
}

export function encodeDer(node: DerNode): Buffer {
  const out = Buffer.allocUnsafe(1 + lengthOctets(node.length) + node.length);
  writeNode(out, 0, node);
  return out;
}
