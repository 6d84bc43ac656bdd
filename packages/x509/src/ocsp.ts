import { createHash } from 'node:crypto';
import { ECDSA_WITH_SHA256_ALGID, TAG, derNode, derTlv, encodeDer, type DerPart } from './der.js';
import { DerError, expectTlv, readTlv, type Tlv } from './der-reader.js';

/**
 * OCSP (RFC 6960) requests read and responses assembled as bytes, for a responder that must answer
 * thousands of requests a second and never crash on garbage. Hand-written for the same reason as the
 * CSR reader: pkijs parses a request in ~100 us and builds a response in ~1 ms.
 */

export type OcspHashAlgorithm = 'sha1' | 'sha256';

/** The hash algorithms' OID contents (without tag and length). */
const HASH_OIDS: Record<string, OcspHashAlgorithm> = {
  // id-sha1 (1.3.14.3.2.26)
  '2b0e03021a': 'sha1',
  // id-sha256 (2.16.840.1.101.3.4.2.1)
  '608648016503040201': 'sha256',
};

const TAG_OID = 0x06;
const TAG_NULL = 0x05;

/**
 * A request's CertID (RFC 6960 4.1.1), reduced to what it means. The request's bytes are deliberately
 * not kept: a response names the certificate by the CertID this responder builds (`buildCertId`), so
 * no requester decides the bytes that others are served from the cache and the store.
 */
export interface OcspCertId {
  /** Undefined for a well-formed hash algorithm we do not answer for (the responder says unauthorized). */
  readonly hashAlgorithm: OcspHashAlgorithm | undefined;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
  /** The serial number: a positive INTEGER's value, unsigned big-endian with no leading zero octet. */
  readonly serial: Buffer;
}

export class OcspMalformedError extends Error {}

/** Reads an OCSPRequest's CertIDs (RFC 6960 4.1.1). Extensions (nonce) are ignored: RFC 9919 profile. */
export function parseOcspRequest(der: Uint8Array, maxRequests = 8): OcspCertId[] {
  try {
    const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
    const outer = expectTlv(buf, 0, TAG.SEQUENCE, 'OCSPRequest');
    if (outer.end !== buf.length) throw new DerError('trailing bytes after OCSPRequest');
    const tbs = expectTlv(buf, outer.contentStart, TAG.SEQUENCE, 'TBSRequest', outer.end);
    let at = tbs.contentStart;
    let next = readTlv(buf, at, tbs.end);
    if (next.tag === 0xa0) {
      // version [0] EXPLICIT Version DEFAULT v1: DER leaves it out, but a client that writes v1 is understood.
      if (!buf.subarray(next.start, next.end).equals(EXPLICIT_V1)) throw new DerError('TBSRequest version must be v1 (0), as a minimal INTEGER');
      next = readTlv(buf, (at = next.end), tbs.end);
    }
    if (next.tag === 0xa1) next = readTlv(buf, (at = next.end), tbs.end); // requestorName
    if (next.tag !== TAG.SEQUENCE) throw new DerError('requestList missing');
    const list = next;
    const ids: OcspCertId[] = [];
    for (let r = list.contentStart; r < list.end; ) {
      const request = expectTlv(buf, r, TAG.SEQUENCE, 'Request', list.end);
      ids.push(readCertId(buf, expectTlv(buf, request.contentStart, TAG.SEQUENCE, 'CertID', request.end)));
      if (ids.length > maxRequests) throw new DerError(`more than ${maxRequests} requests`);
      r = request.end;
    }
    if (ids.length === 0) throw new DerError('empty requestList');
    return ids;
  } catch (err) {
    throw new OcspMalformedError((err as Error).message);
  }
}

const EXPLICIT_V1 = Buffer.from('a003020100', 'hex');

/** CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }, strictly. */
function readCertId(buf: Buffer, certId: Tlv): OcspCertId {
  const algorithm = expectTlv(buf, certId.contentStart, TAG.SEQUENCE, 'hashAlgorithm', certId.end);
  const hashAlgorithm = readHashAlgorithm(buf, algorithm);
  const nameHash = expectTlv(buf, algorithm.end, TAG.OCTET_STRING, 'issuerNameHash', certId.end);
  const keyHash = expectTlv(buf, nameHash.end, TAG.OCTET_STRING, 'issuerKeyHash', certId.end);
  const serial = expectTlv(buf, keyHash.end, TAG.INTEGER, 'serialNumber', certId.end);
  if (serial.end !== certId.end) throw new DerError('extra data in CertID');
  return {
    hashAlgorithm,
    // The hashes are only compared; the serial is kept (cache keys, pending revocations): a copy.
    issuerNameHash: buf.subarray(nameHash.contentStart, nameHash.end),
    issuerKeyHash: buf.subarray(keyHash.contentStart, keyHash.end),
    serial: Buffer.from(positiveIntegerValue(buf.subarray(serial.contentStart, serial.end), 'serialNumber')),
  };
}

/**
 * AlgorithmIdentifier { OBJECT IDENTIFIER, parameters absent or NULL }: both forms are in use for the
 * SHA family (RFC 5754 2; OpenSSL sends NULL), and no hash algorithm takes anything else there.
 */
function readHashAlgorithm(buf: Buffer, algorithm: Tlv): OcspHashAlgorithm | undefined {
  const oid = expectTlv(buf, algorithm.contentStart, TAG_OID, 'hashAlgorithm.algorithm', algorithm.end);
  checkOid(buf.subarray(oid.contentStart, oid.end));
  if (oid.end !== algorithm.end) {
    const parameters = readTlv(buf, oid.end, algorithm.end);
    if (parameters.tag !== TAG_NULL || parameters.contentStart !== parameters.end) throw new DerError('hashAlgorithm parameters must be absent or NULL');
    if (parameters.end !== algorithm.end) throw new DerError('extra data in hashAlgorithm');
  }
  return HASH_OIDS[buf.subarray(oid.contentStart, oid.end).toString('hex')];
}

/** X.690 8.19: at least one subidentifier, each in base 128 without a leading 0x80 octet, the last one ended. */
function checkOid(content: Buffer): void {
  if (content.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  if (content[content.length - 1]! & 0x80) throw new DerError('truncated OBJECT IDENTIFIER');
  for (let i = 0; i < content.length; i++) {
    if (content[i] === 0x80 && (i === 0 || !(content[i - 1]! & 0x80))) throw new DerError('OBJECT IDENTIFIER subidentifier not minimally encoded');
  }
}

/**
 * The value of a serial number INTEGER in minimal DER (X.690 8.3.2), which RFC 5280 4.1.2.2 requires to
 * be positive and at most 20 octets: returned unsigned, without the sign octet. Padding, a negative or
 * zero value is refused: each would be a second spelling of a serial, or no certificate's serial.
 */
export function positiveIntegerValue(content: Buffer, what: string): Buffer {
  if (content.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if (content.length > 1 && ((content[0] === 0 && !(content[1]! & 0x80)) || (content[0] === 0xff && content[1]! & 0x80))) {
    throw new DerError(`${what}: INTEGER not minimally encoded (X.690 8.3.2)`);
  }
  if (content[0]! & 0x80) throw new DerError(`${what}: negative (RFC 5280 4.1.2.2: a positive INTEGER)`);
  const value = content[0] === 0 ? content.subarray(1) : content;
  if (value.length === 0) throw new DerError(`${what}: zero (RFC 5280 4.1.2.2: a positive INTEGER)`);
  if (value.length > 20) throw new DerError(`${what}: longer than 20 octets (RFC 5280 4.1.2.2)`);
  return value;
}

const CERT_ID_HASH_ALGIDS = { sha1: Buffer.from('300906052b0e03021a0500', 'hex'), sha256: Buffer.from('300d06096086480165030402010500', 'hex') } as const;
const LEADING_ZERO = Buffer.from([0]);

/**
 * The one CertID this responder writes for a certificate, whatever the request looked like: the hash
 * AlgorithmIdentifier with NULL parameters (as OpenSSL sends it), the issuer's own hashes, and the
 * serial as a minimal positive INTEGER. `serial` is the unsigned value; leading zero octets are dropped.
 */
export function buildCertId(alg: OcspHashAlgorithm, issuer: OcspIssuerHashes, serial: Buffer): Buffer {
  let value = serial;
  while (value.length > 0 && value[0] === 0) value = value.subarray(1);
  if (value.length === 0 || value.length > 20) throw new Error(`a certificate serial is 1-20 octets and not zero, got ${serial.length} octets`);
  const h = issuer[alg];
  const serialInt = value[0]! & 0x80 ? derNode(TAG.INTEGER, LEADING_ZERO, value) : derNode(TAG.INTEGER, value);
  return encodeDer(derNode(TAG.SEQUENCE, CERT_ID_HASH_ALGIDS[alg], derNode(TAG.OCTET_STRING, h.name), derNode(TAG.OCTET_STRING, h.key), serialInt));
}

/** OCSPRequest { TBSRequest { requestList { Request { CertID } } } }, no nonce, as `openssl ocsp -no_nonce` sends it. */
export function buildOcspRequest(certId: Buffer): Buffer {
  return encodeDer(derNode(TAG.SEQUENCE, derNode(TAG.SEQUENCE, derNode(TAG.SEQUENCE, derNode(TAG.SEQUENCE, certId)))));
}

/**
 * The CertIDs of a signed response's SingleResponses, as written: what a response that is about to be
 * served from the store is checked against (one stored before CertIDs were canonical may echo a request).
 */
export function ocspResponseCertIds(response: Buffer): Buffer[] {
  return ocspResponseEntries(response).map((e) => e.certId);
}

/**
 * Each SingleResponse's CertID and the certificate status it signs (RFC 6960 4.2.1: good [0], revoked
 * [1], unknown [2]), or none when the response is not one this parser reads. A stored response is
 * served only when the status signed inside it is the status the database says now: a database writer
 * could put an older, validly signed "good" back beside a "revoked" status column.
 */
export function ocspResponseEntries(response: Buffer): { certId: Buffer; status: 'good' | 'revoked' | 'unknown' }[] {
  try {
    const outer = expectTlv(response, 0, TAG.SEQUENCE, 'OCSPResponse');
    const status = expectTlv(response, outer.contentStart, 0x0a, 'responseStatus', outer.end);
    const bytes = expectTlv(response, status.end, 0xa0, 'responseBytes', outer.end);
    const seq = expectTlv(response, bytes.contentStart, TAG.SEQUENCE, 'ResponseBytes', bytes.end);
    const type = expectTlv(response, seq.contentStart, TAG_OID, 'responseType', seq.end);
    const octets = expectTlv(response, type.end, TAG.OCTET_STRING, 'response', seq.end);
    const basic = expectTlv(response, octets.contentStart, TAG.SEQUENCE, 'BasicOCSPResponse', octets.end);
    const data = expectTlv(response, basic.contentStart, TAG.SEQUENCE, 'ResponseData', basic.end);
    let at = data.contentStart;
    let next = readTlv(response, at, data.end);
    if (next.tag === 0xa0) next = readTlv(response, (at = next.end), data.end); // version
    // responderID, then producedAt, then responses
    const producedAt = expectTlv(response, next.end, TAG.GENERALIZED_TIME, 'producedAt', data.end);
    const responses = expectTlv(response, producedAt.end, TAG.SEQUENCE, 'responses', data.end);
    const entries: { certId: Buffer; status: 'good' | 'revoked' | 'unknown' }[] = [];
    for (let r = responses.contentStart; r < responses.end; ) {
      const single = expectTlv(response, r, TAG.SEQUENCE, 'SingleResponse', responses.end);
      const certId = expectTlv(response, single.contentStart, TAG.SEQUENCE, 'CertID', single.end);
      const certStatus = readTlv(response, certId.end, single.end);
      const status = certStatus.tag === 0x80 ? 'good' : certStatus.tag === 0xa1 ? 'revoked' : certStatus.tag === 0x82 ? 'unknown' : undefined;
      if (!status) return [];
      entries.push({ certId: response.subarray(certId.start, certId.end), status });
      r = single.end;
    }
    return entries;
  } catch {
    return [];
  }
}

/** What a responder compares CertIDs against: the issuer's name and key hashes in each algorithm. */
export interface OcspIssuerHashes {
  readonly sha1: { name: Buffer; key: Buffer };
  readonly sha256: { name: Buffer; key: Buffer };
  /** SHA-1 of the issuer's public key BIT STRING value: the responderID byKey (RFC 6960 4.2.1). */
  readonly responderKeyHash: Buffer;
}

/** Hashes of the issuer's subject DER and subjectPublicKey (the BIT STRING value, RFC 6960 4.1.1). */
export function ocspIssuerHashes(issuerSubjectDer: Buffer, issuerPublicKeySpki: Buffer): OcspIssuerHashes {
  // P-256 SPKI: the last 65 bytes are the point, the subjectPublicKey value without its unused-bits octet.
  const key = issuerPublicKeySpki.subarray(issuerPublicKeySpki.length - 65);
  const h = (alg: string, data: Buffer) => createHash(alg).update(data).digest();
  return {
    sha1: { name: h('sha1', issuerSubjectDer), key: h('sha1', key) },
    sha256: { name: h('sha256', issuerSubjectDer), key: h('sha256', key) },
    responderKeyHash: h('sha1', key),
  };
}

export function certIdMatchesIssuer(id: OcspCertId, issuer: OcspIssuerHashes): boolean {
  if (!id.hashAlgorithm) return false;
  const hashes = issuer[id.hashAlgorithm];
  return id.issuerNameHash.equals(hashes.name) && id.issuerKeyHash.equals(hashes.key);
}

export type OcspStatus = { readonly status: 'good' } | { readonly status: 'revoked'; readonly revokedAt: Date; readonly reason: number } | { readonly status: 'unknown' };

/** One certificate's answer; its CertID is built here from these, never taken from a request. */
export interface OcspSingle {
  readonly hashAlgorithm: OcspHashAlgorithm;
  /** The certificate's serial, unsigned (as `OcspCertId.serial` and the store hold it). */
  readonly serial: Buffer;
  readonly status: OcspStatus;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

/**
 * OCSP times are always GeneralizedTime (RFC 6960 4.2.1), seconds, Z. The last few are remembered: a
 * re-signing pass writes the same thisUpdate, nextUpdate and producedAt into thousands of responses.
 */
const recentTimes = new Map<number, Buffer>();
function generalizedTime(date: Date): Buffer {
  const ms = date.getTime();
  let der = recentTimes.get(ms);
  if (!der) {
    const iso = date.toISOString();
    der = derTlv(TAG.GENERALIZED_TIME, Buffer.from(iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z', 'ascii'));
    if (recentTimes.size >= 16) recentTimes.delete(recentTimes.keys().next().value!);
    recentTimes.set(ms, der);
  }
  return der;
}

const GOOD = Buffer.from('8000', 'hex');
const UNKNOWN = Buffer.from('8200', 'hex');

function certStatus(s: OcspStatus): DerPart {
  if (s.status === 'good') return GOOD;
  if (s.status === 'unknown') return UNKNOWN;
  // revoked [1] IMPLICIT RevokedInfo { revocationTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  return s.reason === 0 ? derNode(0xa1, generalizedTime(s.revokedAt)) : derNode(0xa1, generalizedTime(s.revokedAt), derNode(0xa0, Buffer.from([0x0a, 0x01, s.reason])));
}

/**
 * ResponseData (RFC 6960 4.2.1): v1, responderID byKey, producedAt, responses; no extensions. Each
 * SingleResponse names its certificate by the canonical CertID (`buildCertId`) under `issuer`.
 */
export function buildOcspResponseData(issuer: OcspIssuerHashes, producedAt: Date, singles: readonly OcspSingle[]): Buffer {
  const responses = singles.map((s) => derNode(TAG.SEQUENCE, buildCertId(s.hashAlgorithm, issuer, s.serial), certStatus(s.status), generalizedTime(s.thisUpdate), derNode(0xa0, generalizedTime(s.nextUpdate))));
  return encodeDer(derNode(TAG.SEQUENCE, derNode(0xa2, derNode(TAG.OCTET_STRING, issuer.responderKeyHash)), generalizedTime(producedAt), derNode(TAG.SEQUENCE, ...responses)));
}

const ID_PKIX_OCSP_BASIC = Buffer.from('06092b0601050507300101', 'hex');

const SUCCESSFUL = Buffer.from('0a0100', 'hex');
const NO_UNUSED_BITS = Buffer.from([0]);

/** OCSPResponse { successful, responseBytes { id-pkix-ocsp-basic, BasicOCSPResponse } }; the CA signs directly, so no certs. */
export function assembleOcspResponse(responseData: Buffer, signatureDer: Buffer): Buffer {
  const basic = derNode(TAG.SEQUENCE, responseData, ECDSA_WITH_SHA256_ALGID, derNode(TAG.BIT_STRING, NO_UNUSED_BITS, signatureDer));
  return encodeDer(derNode(TAG.SEQUENCE, SUCCESSFUL, derNode(0xa0, derNode(TAG.SEQUENCE, ID_PKIX_OCSP_BASIC, derNode(TAG.OCTET_STRING, basic)))));
}

/** Unsigned error responses (RFC 6960 4.2.1 OCSPResponseStatus). */
export const OCSP_ERROR = {
  malformedRequest: Buffer.from('30030a0101', 'hex'),
  internalError: Buffer.from('30030a0102', 'hex'),
  tryLater: Buffer.from('30030a0103', 'hex'),
  unauthorized: Buffer.from('30030a0106', 'hex'),
} as const;
