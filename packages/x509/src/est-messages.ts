import * as asn1js from 'asn1js';
import { FleetError } from '@fleetpki/core';
import { TAG, derTlv } from './der.js';
import { OID } from './oids.js';
import { InputRuleError, readStrictBase64 } from './strict-input.js';

/**
 * The bodies EST (RFC 7030) exchanges: base64 with a Content-Transfer-Encoding of base64, so line
 * breaks are allowed (RFC 7030 4.2.1, RFC 2045 6.8) and nothing else is.
 */
export function readEstBase64(body: string, what: string): Buffer {
  const compact = body.replace(/\r?\n/g, '').trim();
  try {
    return readStrictBase64(compact, what);
  } catch (err) {
    if (err instanceof InputRuleError) throw new FleetError('EST_BODY_MALFORMED', `${err.message} [${err.rule}]; send base64 DER (line breaks allowed), RFC 7030 4.2.1`, { httpStatus: 400 });
    throw err;
  }
}

/**
 * base64 on one line. RFC 2045 6.8 would wrap at 76 characters, but strongSwan's `pki --est` decodes a
 * wrapped body into shifted bytes (seen with 5.9.8: "tbsCertificate: length of ASN.1 object invalid");
 * one line is still valid base64 for every client (openssl: `base64 -d -A`).
 */
export function estBase64(der: Uint8Array): string {
  return Buffer.from(der).toString('base64');
}

/**
 * A CMS certs-only message (RFC 5652 5, RFC 8551 3.2.2 "certs-only"): SignedData version 1 with no
 * digest algorithms, no content, the certificates exactly as stored, and no signers. Assembled from
 * DER by hand: through pkijs (parse each certificate, build SignedData) it took ~1.4 ms per EST answer
 * (measured), more than the enrolment's own signature.
 */
export function certsOnly(certificates: readonly Uint8Array[]): Buffer {
  const signedData = derTlv(
    TAG.SEQUENCE,
    Buffer.concat([
      Buffer.from('020101', 'hex'), // version 1
      Buffer.from('3100', 'hex'), // digestAlgorithms: none
      Buffer.from('300b06092a864886f70d010701', 'hex'), // encapContentInfo { id-data }, no content
      derTlv(0xa0, Buffer.concat(certificates)), // certificates [0] IMPLICIT
      Buffer.from('3100', 'hex'), // signerInfos: none
    ]),
  );
  // ContentInfo { id-signedData (1.2.840.113549.1.7.2), [0] EXPLICIT SignedData }
  return derTlv(TAG.SEQUENCE, Buffer.concat([Buffer.from('06092a864886f70d010702', 'hex'), derTlv(0xa0, signedData)]));
}

/**
 * What a CSR for fleetpki must carry (RFC 7030 4.5.2 CsrAttrs): ecdsa-with-SHA256 as its signature, a
 * P-256 key (an ecPublicKey attribute whose value is the curve, as RFC 7030's own example does for
 * P-384), and the device's hardwareModuleName in a requested subjectAltName (extensionRequest). The
 * subject serialNumber is listed as the alternative that tools without otherName support can set.
 */
export function estCsrAttributes(): Buffer {
  csrAttributes ??= buildCsrAttributes();
  return csrAttributes;
}

let csrAttributes: Buffer | undefined;

function buildCsrAttributes(): Buffer {
  const attrs = new asn1js.Sequence({
    value: [
      new asn1js.ObjectIdentifier({ value: OID.ecdsaWithSha256 }),
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.ecPublicKey }), new asn1js.Set({ value: [new asn1js.ObjectIdentifier({ value: OID.prime256v1 })] })] }),
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.extensionRequest }), new asn1js.Set({ value: [new asn1js.ObjectIdentifier({ value: OID.hardwareModuleName })] })] }),
      new asn1js.ObjectIdentifier({ value: '2.5.4.5' }),
    ],
  });
  return Buffer.from(attrs.toBER());
}
