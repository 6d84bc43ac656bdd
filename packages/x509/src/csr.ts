import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { FleetError } from '@fleetpki/core';
import { ECDSA_WITH_SHA256_ALGID, TAG, derTlv } from './der.js';
import { DerError, expectTlv } from './der-reader.js';
import { OID } from './oids.js';
import { verifyP256Point } from './p256-verify.js';
import { publicKeyFromSpki, type DevicePublicKey } from './public-key.js';
import { C509Error } from './c509/errors.js';
import { parseC509Request, verifyNativeC509RequestP256, type ParsedC509Request } from './c509/csr.js';
import { InputRuleError, assertStrictDer, readPemOrBase64 } from './strict-input.js';

export const MAX_CSR_BYTES = 8 * 1024;

function csrError(code: string, message: string, details?: Record<string, unknown>): FleetError {
  return new FleetError(code, message, { httpStatus: 400, ...(details ? { details } : {}) });
}

/** A strict-reader refusal as CSR_MALFORMED, naming the rule (and offset) in the message and details. */
function csrRuleError(err: InputRuleError): FleetError {
  return csrError('CSR_MALFORMED', `${err.message} [${err.rule}]`, { rule: err.rule, ...(err.offset !== undefined ? { offset: err.offset } : {}) });
}

/**
 * Parses a PKCS#10 request (RFC 2986) from PEM, base64 DER or DER, checks its key is P-256 and its
 * signature proves possession of the private key. Subject and requested extensions are ignored: the
 * profile, not the requester, decides what goes into the certificate.
 */
export function parseCsr(input: string | Uint8Array): DevicePublicKey {
  const { publicKey, parts } = readCsr(input);
  assertPossession(publicKey, parts);
  return publicKey;
}

/**
 * The structural half of parseCsr: DER shape, P-256 key with its point on the curve, signature
 * algorithm, but not the signature itself. Batch uploads check this per line and leave the proof of
 * possession to the workers, which verify it in parallel (checkCsr on their PossessionThreads).
 */
export function readCsr(input: string | Uint8Array): { publicKey: DevicePublicKey; der: Buffer; parts: CsrParts } {
  let der: Buffer;
  try {
    // One strict reader: exactly one PEM block or canonical base64, and DER all the way down.
    der = typeof input === 'string' ? readPemOrBase64(input, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'the CSR') : Buffer.from(input);
    if (der.length === 0 || der.length > MAX_CSR_BYTES) throw csrError('CSR_MALFORMED', `the CSR must be 1-${MAX_CSR_BYTES} bytes of DER, got ${der.length}`);
    assertStrictDer(der, 'the CSR');
  } catch (err) {
    if (err instanceof InputRuleError) throw csrRuleError(err);
    throw err;
  }
  let parts: CsrParts;
  try {
    parts = splitCsr(der);
  } catch (err) {
    throw csrError('CSR_MALFORMED', `the CSR is not a DER PKCS#10 CertificationRequest: ${(err as Error).message}`);
  }
  const publicKey = publicKeyFromSpki(parts.spki);
  if (!parts.signatureAlgorithm.equals(ECDSA_WITH_SHA256_ALGID)) {
    throw csrError('CSR_SIGNATURE_ALGORITHM_UNSUPPORTED', `the CSR is signed with ${describeAlgorithm(parts.signatureAlgorithm)}; expected ecdsa-with-SHA256 (${OID.ecdsaWithSha256}) without parameters`);
  }
  return { publicKey, der, parts };
}

/**
 * A C509 certification request (base64 CBOR) from online enrolment. Type 3 re-encodes a PKCS#10 and
 * goes through parseCsr; type 2 is signed over its CBOR and must be ECDSA P-256 with SHA-256 (C509
 * algorithms 0 and 1). Either way the result is the proven P-256 key.
 */
export function parseC509Csr(input: string): DevicePublicKey {
  let bytes: Buffer;
  try {
    bytes = readPemOrBase64(input, [], 'c509Csr');
  } catch (err) {
    if (err instanceof InputRuleError) throw csrRuleError(err);
    throw err;
  }
  if (bytes.length === 0 || bytes.length > MAX_CSR_BYTES) throw csrError('CSR_MALFORMED', `c509Csr must be 1-${MAX_CSR_BYTES} bytes of base64 CBOR`);
  let request: ParsedC509Request;
  try {
    request = parseC509Request(bytes);
  } catch (err) {
    if (err instanceof C509Error) throw csrError('CSR_MALFORMED', `c509Csr: ${err.message}`);
    throw err;
  }
  if (request.pkcs10) return parseCsr(request.pkcs10);
  const publicKey = publicKeyFromSpki(request.subjectPublicKeyInfo);
  if (request.signatureAlgorithm !== 0) throw csrError('CSR_SIGNATURE_ALGORITHM_UNSUPPORTED', `c509Csr is signed with C509 algorithm ${String(request.signatureAlgorithm)}; expected 0 (ecdsa-with-SHA256)`);
  if (!verifyNativeC509RequestP256(request)) throw csrError('CSR_SIGNATURE_INVALID', 'the c509Csr signature does not verify with its public key (no proof of possession)');
  return publicKey;
}

function assertPossession(key: DevicePublicKey, parts: CsrParts): void {
  if (!verifyP256(key, parts.certificationRequestInfo, parts.signature)) throw csrPossessionRefused();
}

/** The refusal of a CSR whose signature does not verify with its own key (parseCsr, checkCsr). */
export function csrPossessionRefused(): FleetError {
  return csrError('CSR_SIGNATURE_INVALID', 'the CSR signature does not verify with its public key (no proof of possession)');
}

export interface CsrParts {
  readonly certificationRequestInfo: Buffer;
  readonly spki: Buffer;
  readonly signatureAlgorithm: Buffer;
  readonly signature: Buffer;
}

/** CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING } (RFC 2986 4.2). */
function splitCsr(der: Buffer): CsrParts {
  const outer = expectTlv(der, 0, TAG.SEQUENCE, 'CertificationRequest');
  if (outer.end !== der.length) throw new DerError(`${der.length - outer.end} bytes after the CertificationRequest`);
  const info = expectTlv(der, outer.contentStart, TAG.SEQUENCE, 'certificationRequestInfo', outer.end);
  const version = expectTlv(der, info.contentStart, TAG.INTEGER, 'version', info.end);
  if (version.end - version.contentStart !== 1 || der[version.contentStart] !== 0) throw new DerError('version must be 0 (v1)');
  const subject = expectTlv(der, version.end, TAG.SEQUENCE, 'subject', info.end);
  const spki = expectTlv(der, subject.end, TAG.SEQUENCE, 'subjectPKInfo', info.end);
  const attributes = expectTlv(der, spki.end, 0xa0, 'attributes [0]', info.end);
  if (attributes.end !== info.end) throw new DerError('extra data inside certificationRequestInfo');
  const algorithm = expectTlv(der, info.end, TAG.SEQUENCE, 'signatureAlgorithm', outer.end);
  const signature = expectTlv(der, algorithm.end, TAG.BIT_STRING, 'signature', outer.end);
  if (signature.end !== outer.end) throw new DerError('extra data after the signature');
  if (der[signature.contentStart] !== 0) throw new DerError('signature BIT STRING has unused bits');
  return {
    certificationRequestInfo: der.subarray(info.start, info.end),
    spki: der.subarray(spki.start, spki.end),
    signatureAlgorithm: der.subarray(algorithm.start, algorithm.end),
    signature: der.subarray(signature.contentStart + 1, signature.end),
  };
}

/** Names an AlgorithmIdentifier for an error message (the error path only, so asn1js is fine here). */
function describeAlgorithm(algorithmIdentifier: Buffer): string {
  try {
    const parsed = new pkijs.AlgorithmIdentifier({ schema: asn1js.fromBER(algorithmIdentifier).result });
    return parsed.algorithmId + (parsed.algorithmParams ? ' with parameters' : '');
  } catch {
    return 'an unreadable algorithm identifier';
  }
}

/** Verifies an ECDSA P-256 signature by a device key (verifyP256Point). */
export function verifyP256(key: DevicePublicKey, data: Uint8Array, signatureDer: Uint8Array): boolean {
  return verifyP256Point(key.point, data, signatureDer);
}

/**
 * A minimal PKCS#10 request (empty subject, no attributes) for a P-256 key, as device firmware or a test
 * factory produces it. Written by hand because generating a million through pkijs costs a millisecond
 * each; `sign` returns a DER ECDSA signature over the CertificationRequestInfo.
 */
export function buildMinimalCsr(publicKeySpki: Buffer, sign: (certificationRequestInfo: Buffer) => Buffer, subjectSerialNumber?: string): Buffer {
  // CertificationRequestInfo ::= SEQUENCE { version 0, subject Name (empty, or serialNumber=<EUI-64>
  // for EST and CMP, which carry no other device field), SPKI, attributes [0] {} }
  const subject = subjectSerialNumber === undefined
    ? Buffer.from('3000', 'hex')
    : derTlv(TAG.SEQUENCE, derTlv(0x31, derTlv(TAG.SEQUENCE, Buffer.concat([Buffer.from('0603550405', 'hex'), derTlv(0x13, Buffer.from(subjectSerialNumber, 'ascii'))]))));
  const body = Buffer.concat([Buffer.from('020100', 'hex'), subject, publicKeySpki, Buffer.from('a000', 'hex')]);
  const info = derTlv(TAG.SEQUENCE, body);
  const signature = sign(info);
  return derTlv(TAG.SEQUENCE, Buffer.concat([info, ECDSA_WITH_SHA256_ALGID, derTlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), signature]))]));
}
