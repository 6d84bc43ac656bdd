import { createHash } from 'node:crypto';
import { ECDSA_WITH_SHA256_ALGID, TAG, derNode, derTlv, encodeDer, type DerPart } from './der.js';
import { DerError, expectTlv, readTlv } from './der-reader.js';

/**
 * OCSP (RFC 6960) requests read and responses assembled as bytes, for a responder that must answer
 * thousands of requests a second and never crash on garbage. Hand-written for the same reason as the
 * CSR reader: pkijs parses a request in ~100 us and builds a response in ~1 ms.
 */

export type OcspHashAlgorithm = 'sha1' | 'sha256';

const HASH_ALGIDS: Record<string, OcspHashAlgorithm> = {
  // id-sha1 (1.3.14.3.2.26), with or without NULL parameters
  '06052b0e03021a': 'sha1',
  // id-sha256 (2.16.840.1.101.3.4.2.1)
  '0609608648016503040201': 'sha256',
};

export interface OcspCertId {
  /** The CertID's DER, echoed back byte for byte in the SingleResponse. */
  readonly der: Buffer;
  readonly hashAlgorithm: OcspHashAlgorithm | undefined;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
  /** Serial number as unsigned big-endian bytes (leading zero octets removed). */
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
    if (next.tag === 0xa0) next = readTlv(buf, (at = next.end), tbs.end); // version
    if (next.tag === 0xa1) next = readTlv(buf, (at = next.end), tbs.end); // requestorName
    if (next.tag !== TAG.SEQUENCE) throw new DerError('requestList missing');
    const list = next;
    const ids: OcspCertId[] = [];
    for (let r = list.contentStart; r < list.end; ) {
      const request = expectTlv(buf, r, TAG.SEQUENCE, 'Request', list.end);
      const certId = expectTlv(buf, request.contentStart, TAG.SEQUENCE, 'CertID', request.end);
      const algorithm = expectTlv(buf, certId.contentStart, TAG.SEQUENCE, 'hashAlgorithm', certId.end);
      const algOid = readTlv(buf, algorithm.contentStart, algorithm.end);
      const nameHash = expectTlv(buf, algorithm.end, TAG.OCTET_STRING, 'issuerNameHash', certId.end);
      const keyHash = expectTlv(buf, nameHash.end, TAG.OCTET_STRING, 'issuerKeyHash', certId.end);
      const serial = expectTlv(buf, keyHash.end, TAG.INTEGER, 'serialNumber', certId.end);
      if (serial.end !== certId.end) throw new DerError('extra data in CertID');
      if (serial.end - serial.contentStart === 0 || serial.end - serial.contentStart > 21) throw new DerError('serialNumber length');
      let serialBytes = buf.subarray(serial.contentStart, serial.end);
      while (serialBytes.length > 1 && serialBytes[0] === 0) serialBytes = serialBytes.subarray(1);
      ids.push({
        der: buf.subarray(certId.start, certId.end),
        hashAlgorithm: HASH_ALGIDS[buf.subarray(algOid.start, algOid.end).toString('hex')],
        issuerNameHash: buf.subarray(nameHash.contentStart, nameHash.end),
        issuerKeyHash: buf.subarray(keyHash.contentStart, keyHash.end),
        serial: Buffer.from(serialBytes),
      });
      if (ids.length > maxRequests) throw new DerError(`more than ${maxRequests} requests`);
      r = request.end;
    }
    if (ids.length === 0) throw new DerError('empty requestList');
    return ids;
  } catch (err) {
    throw new OcspMalformedError((err as Error).message);
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

export interface OcspSingle {
  readonly certId: Buffer;
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

/** ResponseData (RFC 6960 4.2.1): v1, responderID byKey, producedAt, responses; no extensions. */
export function buildOcspResponseData(responderKeyHash: Buffer, producedAt: Date, singles: readonly OcspSingle[]): Buffer {
  const responses = singles.map((s) => derNode(TAG.SEQUENCE, s.certId, certStatus(s.status), generalizedTime(s.thisUpdate), derNode(0xa0, generalizedTime(s.nextUpdate))));
  return encodeDer(derNode(TAG.SEQUENCE, derNode(0xa2, derNode(TAG.OCTET_STRING, responderKeyHash)), generalizedTime(producedAt), derNode(TAG.SEQUENCE, ...responses)));
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
