import { isIP } from 'node:net';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { certificateTime, encodeName, type NameParts } from './ca-certificate.js';
import { subjectKeyIdMethod2 } from './device-template.js';
import { OID } from './oids.js';

/**
 * What an organisation certificate is for: TLS server, TLS client (a person's mTLS credential), a site's
 * audit key, a site's CMP protection key, or one of the deployment's own TLS links between its parts
 * (`fleetpki tls internal`: a server of PostgreSQL, Redis, etcd, ..., or a host's client towards etcd).
 * An internal client certificate is never a person's credential, whatever chain it has.
 */
export type OrganisationPurpose = 'server' | 'client' | 'audit' | 'cmp' | 'internal-server' | 'internal-client';

/** The purposes whose certificates name their hosts (subjectAltName). */
export const SERVER_PURPOSES: readonly OrganisationPurpose[] = ['server', 'internal-server'];

export interface OrganisationCertificateRequest {
  /**
   * A common name except for an internal client (etcd's): with client certificates required, etcd's JSON
   * gateway (which Patroni talks to) answers 400 "CommonName of client sending a request against gateway
   * will be ignored" to any client certificate with one. Such a subject names its host in the OU.
   */
  readonly subject: NameParts;
  readonly purpose: OrganisationPurpose;
  readonly issuerSubjectDer: Buffer;
  readonly issuerKeyId: Buffer;
  readonly serial: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKeySpki: Buffer;
  /** subjectAltName for servers: host names and IP addresses. */
  readonly names?: readonly string[];
  /** internal-server only: clientAuth besides serverAuth, for a part that is also its peers' client (etcd). */
  readonly clientAuthToo?: boolean;
}

const EKU: Record<OrganisationPurpose, string> = { server: OID.serverAuth, client: OID.clientAuth, audit: OID.auditSigning, cmp: OID.cmcRA, 'internal-server': OID.serverAuth, 'internal-client': OID.clientAuth };

/** The extended key usages of a request: its purpose's, and clientAuth when asked (lint eku_client_too). */
export function organisationKeyPurposes(req: Pick<OrganisationCertificateRequest, 'purpose' | 'clientAuthToo'>): string[] {
  return req.clientAuthToo ? [EKU[req.purpose], OID.clientAuth] : [EKU[req.purpose]];
}

/**
 * An end-entity certificate from the organisation CA (PROFILE.md, organisation certificates): ECDSA
 * P-256, keyUsage digitalSignature (critical), the extended key usage of its purpose (an internal server
 * may add clientAuth), SAN for servers,
 * 8-byte key identifiers. Issued rarely, so built with pkijs.
 */
export function buildOrganisationTbs(req: OrganisationCertificateRequest): { der: Buffer; keyId: Buffer } {
  const keyId = subjectKeyIdMethod2(req.publicKeySpki.subarray(req.publicKeySpki.length - 65));
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: req.serial });
  cert.signature = new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecdsaWithSha256 });
  cert.issuer = pkijs.RelativeDistinguishedNames.fromBER(req.issuerSubjectDer);
  cert.subject = pkijs.RelativeDistinguishedNames.fromBER(encodeName(req.subject));
  cert.notBefore = certificateTime(req.notBefore);
  cert.notAfter = certificateTime(req.notAfter);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(req.publicKeySpki);
  const ext = (extnID: string, critical: boolean, value: asn1js.AsnType) => new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
  // digitalSignature (0): bit 1000 0000, unused 7.
  const keyUsage = new asn1js.BitString({ valueHex: Buffer.from([0x80]), unusedBits: 7 });
  cert.extensions = [
    ext(OID.keyUsage, true, keyUsage),
    ext(OID.extendedKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: organisationKeyPurposes(req) }).toSchema()),
    ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyId })),
    ext(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: req.issuerKeyId }) }).toSchema()),
  ];
  if (req.names?.length) {
    const altNames = req.names.map((n) =>
      isIP(n) ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(n) }) }) : new pkijs.GeneralName({ type: 2, value: n }),
    );
    cert.extensions.push(ext(OID.subjectAltName, false, new pkijs.GeneralNames({ names: altNames }).toSchema()));
  }
  return { der: Buffer.from(cert.encodeTBS().toBER(false)), keyId };
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head, tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => { const b = Buffer.alloc(2); b.writeUInt16BE(parseInt(g, 16)); return b; }));
}
