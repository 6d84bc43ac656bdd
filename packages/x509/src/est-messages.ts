import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { FleetError } from '@fleetpki/core';
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
 * A CMS certs-only message (RFC 5652 5, RFC 8551 3.2.2 "certs-only"): SignedData with no signers and
 * the certificates, exactly as stored (pkijs re-emits a parsed certificate from its original bytes).
 */
export function certsOnly(certificates: readonly Uint8Array[]): Buffer {
  const signed = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: '1.2.840.113549.1.7.1' }),
    certificates: certificates.map((der) => pkijs.Certificate.fromBER(der)),
    digestAlgorithms: [],
    signerInfos: [],
  });
  const content = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: signed.toSchema(true) });
  return Buffer.from(content.toSchema().toBER());
}

/**
 * What a CSR for fleetpki must carry (RFC 7030 4.5.2 CsrAttrs): ecdsa-with-SHA256 as its signature, a
 * P-256 key (an ecPublicKey attribute whose value is the curve, as RFC 7030's own example does for
 * P-384), and the device's hardwareModuleName in a requested subjectAltName (extensionRequest). The
 * subject serialNumber is listed as the alternative that tools without otherName support can set.
 */
export function estCsrAttributes(): Buffer {
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
