import { X509Certificate, createHash, createHmac, createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import { DerError, expectTlv, readTlv } from '@fleetpki/x509';
import { CmpMessageError, oidText, type CertReqMsg, type PkiMessage } from './pki-message.js';

/** RFC 4210 5.1.3.1 / RFC 4211 4.4: PasswordBasedMac. */
export const OID_PASSWORD_BASED_MAC = '1.2.840.113533.7.66.13';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const HASHES: Record<string, string> = { '1.3.14.3.2.26': 'sha1', '2.16.840.1.101.3.4.2.1': 'sha256', '2.16.840.1.101.3.4.2.2': 'sha384', '2.16.840.1.101.3.4.2.3': 'sha512' };
const HMACS: Record<string, string> = { '1.3.6.1.5.5.8.1.2': 'sha1', '1.2.840.113549.2.9': 'sha256', '1.2.840.113549.2.10': 'sha384', '1.2.840.113549.2.11': 'sha512' };
/**
 * Iterations a client may ask the server to compute before anything authenticates it: each is a hash,
 * paid for a sender nobody knows yet. Iterations slow down guessing a low-entropy password from a
 * captured message; fleetpki's secrets are 128 random bits derived in the HSM
 * (packages/ca/src/access/cmp-credentials.ts), which no iteration count makes easier or harder to guess,
 * so a high count buys an attacker CPU and a factory nothing. The clients' defaults: OpenSSL 500 (it
 * accepts 100 to 100,000), BouncyCastle's PKMACBuilder 1,000. 2,000 takes them both and is a fiftieth
 * of OpenSSL's maximum, which took 0.3-0.5 s of the main thread a request (issue 33); and it runs on a
 * PBM thread (PbmThreads), not the main one.
 */
export const MAX_PBM_ITERATIONS = 2_000;
/** What our answers use: OpenSSL's own default, enough for a random secret (see MAX_PBM_ITERATIONS). */
export const RESPONSE_PBM_ITERATIONS = 500;

/** Computes password-based MACs: on a thread of its own in services (PbmThreads), inline in tests and scripts. */
export interface PbmComputer {
  mac(secret: Buffer, parameters: PbmParameters, data: Buffer): Promise<Buffer>;
}

export const inlinePbm: PbmComputer = { mac: async (secret, parameters, data) => passwordBasedMac(secret, parameters, data) };

export interface PbmParameters {
  readonly salt: Buffer;
  readonly owf: string;
  readonly iterations: number;
  readonly mac: string;
}

export function readPbmParameters(parameters: Buffer | undefined): PbmParameters {
  if (!parameters) throw new CmpMessageError('PasswordBasedMac without its parameters', 'badAlg');
  try {
    const seq = expectTlv(parameters, 0, 0x30, 'PBMParameter');
    const salt = expectTlv(parameters, seq.contentStart, 0x04, 'salt', seq.end);
    const owf = expectTlv(parameters, salt.end, 0x30, 'owf', seq.end);
    const owfOid = expectTlv(parameters, owf.contentStart, 0x06, 'owf OID', owf.end);
    const count = expectTlv(parameters, owf.end, 0x02, 'iterationCount', seq.end);
    const mac = expectTlv(parameters, count.end, 0x30, 'mac', seq.end);
    const macOid = readTlv(parameters, mac.contentStart, mac.end);
    const countBytes = parameters.subarray(count.contentStart, count.end);
    if (countBytes.length === 0 || countBytes.length > 4 || countBytes[0]! & 0x80) throw new DerError('iterationCount out of range');
    const owfName = HASHES[oidText(parameters.subarray(owfOid.contentStart, owfOid.end))];
    const macName = HMACS[oidText(parameters.subarray(macOid.contentStart, macOid.end))];
    if (!owfName || !macName) throw new CmpMessageError('PasswordBasedMac with a one-way function or MAC this CA does not support (SHA-1/2 and HMAC-SHA-1/2 are)', 'badAlg');
    const salted = parameters.subarray(salt.contentStart, salt.end);
    if (salted.length < 8 || salted.length > 64) throw new CmpMessageError(`PasswordBasedMac salt of ${salted.length} bytes (8 to 64 are accepted)`, 'badAlg');
    const iterations = countBytes.readUIntBE(0, countBytes.length);
    // Refused here, before the caller looks the sender's secret up (a database read and an HSM derivation).
    checkIterations(iterations);
    return { salt: Buffer.from(salted), owf: owfName, iterations, mac: macName };
  } catch (err) {
    if (err instanceof DerError) throw new CmpMessageError(`PBMParameter: ${err.message}`, 'badDataFormat');
    throw err;
  }
}

function checkIterations(iterations: number): void {
  if (iterations < 1 || iterations > MAX_PBM_ITERATIONS) throw new CmpMessageError(`PasswordBasedMac with ${iterations} iterations (1 to ${MAX_PBM_ITERATIONS} are accepted: the shared secrets are random, see the README)`, 'badAlg');
}

/** The MAC a shared secret gives over `data` under these parameters (RFC 4211 4.4). */
export function passwordBasedMac(secret: Buffer, p: PbmParameters, data: Buffer): Buffer {
  checkIterations(p.iterations);
  let key = createHash(p.owf).update(secret).update(p.salt).digest();
  for (let i = 1; i < p.iterations; i++) key = createHash(p.owf).update(key).digest();
  return createHmac(p.mac, key).update(data).digest();
}

/**
 * Checks MAC protection with the shared secret provisioned for the sender's reference (senderKID),
 * the iterations computed by `pbm` (a thread of its own in services). Every failure is
 * badMessageCheck: a wrong secret and a changed byte look the same from outside.
 */
export async function verifyMacProtection(message: PkiMessage, secret: Buffer, pbm: PbmComputer = inlinePbm): Promise<void> {
  const alg = message.header.protectionAlg;
  if (!alg || alg.oid !== OID_PASSWORD_BASED_MAC) throw new CmpMessageError('not protected by a password-based MAC', 'badMessageCheck');
  if (!message.protection) throw new CmpMessageError('the message carries no protection', 'badMessageCheck');
  const expected = await pbm.mac(secret, readPbmParameters(alg.parameters), message.protectedPart);
  if (expected.length !== message.protection.length || !timingSafeEqual(expected, message.protection)) throw new CmpMessageError('the MAC protection does not verify', 'badMessageCheck');
}

/**
 * Checks signature protection with the protecting certificate: the first of extraCerts (RFC 9483 3.3),
 * or, when the client left it out (OpenSSL 3.0 omits a self-signed one), the `known` certificate the
 * caller found by the header's senderKID. Returns the certificate used, for the caller to check whom it
 * names and who issued it.
 */
export function verifySignatureProtection(message: PkiMessage, known?: X509Certificate): X509Certificate {
  const alg = message.header.protectionAlg;
  if (!alg || alg.oid !== OID_ECDSA_SHA256) throw new CmpMessageError(`signature protection ${alg?.oid ?? 'absent'}: this CA accepts ecdsa-with-SHA256`, 'badAlg');
  if (!message.protection) throw new CmpMessageError('the message carries no protection', 'badMessageCheck');
  let certificate = known;
  const first = message.extraCerts[0];
  if (first) {
    try {
      certificate = new X509Certificate(first);
    } catch {
      throw new CmpMessageError('the first extraCerts certificate cannot be read', 'badDataFormat');
    }
  }
  if (!certificate) throw new CmpMessageError('signature protection without the protecting certificate (extraCerts) and no known certificate for its senderKID', 'badMessageCheck');
  const ok = verify('sha256', message.protectedPart, { key: certificate.publicKey, dsaEncoding: 'der' }, message.protection);
  if (!ok) throw new CmpMessageError('the signature protection does not verify with the protecting certificate', 'badMessageCheck');
  return certificate;
}

/** RFC 4211 4.1: a signature POP without poposkInput signs the CertRequest with the key being certified. */
export function verifyPop(request: CertReqMsg): void {
  const popo = request.popo;
  if (!popo || popo.kind !== 'signature') throw new CmpMessageError(`certReqId ${request.certReqId}: proof of possession must be a signature`, 'badPOP');
  if (popo.hasPoposkInput) throw new CmpMessageError(`certReqId ${request.certReqId}: poposkInput is for requests without a subject; give a subject`, 'badPOP');
  if (popo.algorithm.oid !== OID_ECDSA_SHA256) throw new CmpMessageError(`certReqId ${request.certReqId}: POP algorithm ${popo.algorithm.oid}; this CA accepts ecdsa-with-SHA256`, 'badAlg');
  if (!request.template.publicKey) throw new CmpMessageError(`certReqId ${request.certReqId}: no public key in the template`, 'badCertId');
  let key;
  try {
    key = createPublicKey({ key: request.template.publicKey, format: 'der', type: 'spki' });
  } catch {
    throw new CmpMessageError(`certReqId ${request.certReqId}: the template's public key cannot be read`, 'badDataFormat');
  }
  if (!verify('sha256', request.certRequestDer, { key, dsaEncoding: 'der' }, popo.signature)) throw new CmpMessageError(`certReqId ${request.certReqId}: the proof of possession does not verify`, 'badPOP');
}
