import { createPublicKey, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { FleetError } from '@fleetpki/core';
import { derFromPemOrBase64 } from './der.js';
import { OID } from './oids.js';
import { publicKeyFromSpki, type DevicePublicKey } from './public-key.js';

export const MAX_CSR_BYTES = 8 * 1024;

function csrError(code: string, message: string): FleetError {
  return new FleetError(code, message, { httpStatus: 400 });
}

/**
 * Parses a PKCS#10 request (RFC 2986) from PEM, base64 DER or DER, checks its key is P-256 and its
 * signature proves possession of the private key. Subject and requested extensions are ignored: the
 * profile, not the requester, decides what goes into the certificate.
 */
export function parseCsr(input: string | Uint8Array): DevicePublicKey {
  let der: Buffer;
  try {
    der = derFromPemOrBase64(input, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
  } catch (err) {
    throw csrError('CSR_MALFORMED', `the CSR is not PEM or base64 DER: ${(err as Error).message}`);
  }
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw csrError('CSR_MALFORMED', `the CSR must be 1-${MAX_CSR_BYTES} bytes of DER, got ${der.length}`);
  const asn1 = asn1js.fromBER(der);
  if (asn1.offset === -1 || asn1.offset !== der.length) throw csrError('CSR_MALFORMED', 'the CSR is not a single well-formed DER structure');
  let request: pkijs.CertificationRequest;
  try {
    request = new pkijs.CertificationRequest({ schema: asn1.result });
  } catch (err) {
    throw csrError('CSR_MALFORMED', `the CSR is not a PKCS#10 CertificationRequest: ${(err as Error).message}`);
  }
  const spki = Buffer.from(request.subjectPublicKeyInfo.toSchema().toBER(false));
  const key = publicKeyFromSpki(spki);
  if (request.signatureAlgorithm.algorithmId !== OID.ecdsaWithSha256) {
    throw csrError('CSR_SIGNATURE_ALGORITHM_UNSUPPORTED', `the CSR is signed with ${request.signatureAlgorithm.algorithmId}; expected ecdsa-with-SHA256 (${OID.ecdsaWithSha256})`);
  }
  const publicKey = createPublicKey({ key: key.spki, format: 'der', type: 'spki' });
  const signature = Buffer.from(request.signatureValue.valueBlock.valueHexView);
  let valid = false;
  try {
    valid = verify('sha256', request.tbsView, publicKey, signature);
  } catch {
    valid = false;
  }
  if (!valid) throw csrError('CSR_SIGNATURE_INVALID', 'the CSR signature does not verify with its public key (no proof of possession)');
  return key;
}
