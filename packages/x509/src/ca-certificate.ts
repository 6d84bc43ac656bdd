import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { OID } from './oids.js';
import { subjectKeyIdMethod2 } from './device-template.js';

export interface CaName {
  readonly commonName: string;
  readonly organization?: string;
  /** An organisation certificate's role (factory, revocation-officer, audit, server, ...). */
  readonly organizationalUnit?: string;
  readonly country?: string;
}

export interface CaCertificateRequest {
  /** The subject as a name, or (a renewal) the exact DER of the current certificate's subject. */
  readonly subject?: CaName;
  readonly subjectDer?: Buffer;
  /** DER of the issuer's subject; undefined for a self-signed root. */
  readonly issuerSubjectDer?: Buffer;
  /** Issuer's key id for authorityKeyIdentifier; undefined for a self-signed root (uses its own). */
  readonly issuerKeyId?: Buffer;
  readonly serial: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKeySpki: Buffer;
  /** basicConstraints pathLenConstraint; undefined = unlimited (root). */
  readonly pathLength?: number;
}

export interface CaTbs {
  readonly der: Buffer;
  readonly keyId: Buffer;
  readonly subjectDer: Buffer;
}

/** A subject as encodeName takes it: a CA's always has a common name; an etcd client's has none (organisation-certificate.ts). */
export type NameParts = Omit<CaName, 'commonName'> & { readonly commonName?: string };

export function encodeName(name: NameParts): Buffer {
  const rdn = (type: string, value: asn1js.Utf8String | asn1js.PrintableString) => new pkijs.AttributeTypeAndValue({ type, value });
  const values: pkijs.AttributeTypeAndValue[] = [];
  if (name.country) values.push(rdn(OID.countryName, new asn1js.PrintableString({ value: name.country })));
  if (name.organization) values.push(rdn(OID.organizationName, new asn1js.Utf8String({ value: name.organization })));
  if (name.organizationalUnit) values.push(rdn(OID.organizationalUnitName, new asn1js.Utf8String({ value: name.organizationalUnit })));
  if (name.commonName !== undefined) values.push(rdn(OID.commonName, new asn1js.Utf8String({ value: name.commonName })));
  // One attribute per RDN, in the usual C, O, OU, CN order.
  const rdns = new asn1js.Sequence({ value: values.map((v) => new asn1js.Set({ value: [v.toSchema()] })) });
  return Buffer.from(rdns.toBER(false));
}

export function certificateTime(date: Date): pkijs.Time {
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return new pkijs.Time({ type: date.getUTCFullYear() < 2050 ? 0 : 1, value: date });
}

/**
 * Builds a CA TBSCertificate (RFC 5280 profile for CA certificates: basicConstraints critical cA,
 * keyUsage critical keyCertSign + cRLSign, 8-byte key identifiers). Ceremonies are rare, so the general
 * pkijs builders are fine here.
 */
export function buildCaTbs(req: CaCertificateRequest): CaTbs {
  if (!req.subjectDer && !req.subject) throw new Error('buildCaTbs needs subject or subjectDer');
  const subjectDer = req.subjectDer ?? encodeName(req.subject!);
  const keyId = subjectKeyIdMethod2(req.publicKeySpki.subarray(req.publicKeySpki.length - 65));
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: req.serial });
  cert.signature = new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecdsaWithSha256 });
  cert.issuer = pkijs.RelativeDistinguishedNames.fromBER(req.issuerSubjectDer ?? subjectDer);
  cert.subject = pkijs.RelativeDistinguishedNames.fromBER(subjectDer);
  cert.notBefore = certificateTime(req.notBefore);
  cert.notAfter = certificateTime(req.notAfter);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(req.publicKeySpki);
  const ext = (extnID: string, critical: boolean, value: asn1js.AsnType) => new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
  const basic = new pkijs.BasicConstraints({ cA: true, ...(req.pathLength !== undefined ? { pathLenConstraint: req.pathLength } : {}) });
  // keyCertSign (5) and cRLSign (6): bits 0000 0110, unused 1.
  const keyUsage = new asn1js.BitString({ valueHex: Buffer.from([0x06]), unusedBits: 1 });
  cert.extensions = [
    ext(OID.basicConstraints, true, basic.toSchema()),
    ext(OID.keyUsage, true, keyUsage),
    ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyId })),
    ext(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: req.issuerKeyId ?? keyId }) }).toSchema()),
  ];
  return { der: Buffer.from(cert.encodeTBS().toBER(false)), keyId, subjectDer };
}

export interface ParsedCaCertificate {
  /** Serial number (unsigned big-endian bytes), as a CRL entry names the certificate. */
  readonly serial: Buffer;
  readonly subjectDer: Buffer;
  /** The issuer's name as encoded (a link certificate's or a re-certified CA's differs from its subject's issuer before). */
  readonly issuerDer: Buffer;
  readonly keyId: Buffer;
  readonly publicKeySpki: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectText: string;
}

/** Reads what the issuance path needs from a CA certificate (DER). */
export function parseCaCertificate(der: Uint8Array): ParsedCaCertificate {
  const cert = pkijs.Certificate.fromBER(der);
  const ski = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  if (!ski) throw new Error('CA certificate has no subjectKeyIdentifier');
  const keyId = Buffer.from((asn1js.fromBER(ski.extnValue.valueBlock.valueHexView).result as asn1js.OctetString).valueBlock.valueHexView);
  const subjectText = cert.subject.typesAndValues.map((tv) => `${tv.type === OID.commonName ? 'CN' : tv.type === OID.organizationName ? 'O' : tv.type === OID.countryName ? 'C' : tv.type}=${tv.value.valueBlock.value}`).join(', ');
  let serial = Buffer.from(cert.serialNumber.valueBlock.valueHexView);
  while (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  return {
    serial,
    subjectDer: Buffer.from(cert.subject.toSchema().toBER(false)),
    issuerDer: Buffer.from(cert.issuer.toSchema().toBER(false)),
    keyId,
    publicKeySpki: Buffer.from(cert.subjectPublicKeyInfo.toSchema().toBER(false)),
    notBefore: cert.notBefore.value,
    notAfter: cert.notAfter.value,
    subjectText,
  };
}

/**
 * What a certificate allows its key to certify: basicConstraints (cA, pathLenConstraint) and whether
 * keyUsage has keyCertSign. Node's X509Certificate tells cA only; a root's successor must be a CA
 * with no path length limit (a subordinate CA's certificate, pathLen 0, must never pass for a root).
 */
export function caConstraints(der: Uint8Array): { ca: boolean; pathLength: number | undefined; keyCertSign: boolean } {
  const cert = pkijs.Certificate.fromBER(der);
  const extension = (oid: string) => cert.extensions?.find((e) => e.extnID === oid);
  const basic = extension(OID.basicConstraints);
  const constraints = basic ? new pkijs.BasicConstraints({ schema: asn1js.fromBER(basic.extnValue.valueBlock.valueHexView).result }) : undefined;
  const usage = extension(OID.keyUsage);
  const bits = usage ? Buffer.from((asn1js.fromBER(usage.extnValue.valueBlock.valueHexView).result as asn1js.BitString).valueBlock.valueHexView) : undefined;
  const pathLength = constraints?.pathLenConstraint;
  return { ca: constraints?.cA === true, pathLength: pathLength === undefined ? undefined : typeof pathLength === 'number' ? pathLength : pathLength.valueBlock.valueDec, keyCertSign: bits === undefined || (bits[0]! & 0x04) !== 0 };
}
