import { createHash, createPublicKey, verify } from 'node:crypto';
import { FleetError, type EtcdMemberName, type SiteId, type TlsPart } from '@fleetpki/core';
import { parsePkcs11Uri, type KeyStore } from '@fleetpki/hsm';
import { ETCD_USER_NAMES } from '@fleetpki/consensus';
import type { Pool, Role } from '@fleetpki/store';
import { assembleSignedCertificate, buildOrganisationTbs, lintOrganisationTbs, parseCaCertificate, type LintedOrganisationTbs, type NameParts, type OrganisationPurpose, type ParsedCaCertificate } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { newSerial } from '../issuance/serials.js';
import { accessStoreOf } from './postgres-store.js';
import type { OrganisationIssuerStore } from './store.js';

export interface OrganisationCertificateOrder {
  readonly purpose: OrganisationPurpose;
  readonly subject: NameParts;
  readonly publicKeySpki: Buffer;
  readonly days: number;
  /** SAN of a server: host names and IP addresses. */
  readonly names?: readonly string[];
  /** For client certificates: the role (and for factories the manufacturer) the certificate stands for. */
  readonly role?: Role;
  readonly manufacturerId?: string;
  /** For client certificates: the person it is a credential of, and the administrator who had it issued. */
  readonly person?: { readonly id: string; readonly createdBy: string | null };
  /**
   * Internal TLS certificates (internal-server, internal-client): the host's part it serves, the
   * current certificate of that part it takes the place of (null: none; anything else found at store
   * time refuses the issuance), and whether a server is also its peers' client (both EKUs).
   */
  readonly internal?: { readonly part: TlsPart; readonly host: EtcdMemberName; readonly supersedes: Buffer | null; readonly clientAuthToo: boolean };
  readonly actor: string;
}

/** An organisation certificate ready to be signed: the linted TBS and what its intent commits to. */
export interface PreparedOrganisationCertificate {
  readonly linted: LintedOrganisationTbs;
  readonly serial: Buffer;
  readonly keyId: Buffer;
  readonly notAfter: Date;
  readonly subjectDn: string;
  /** SHA-256 of the DER TBS: the intent's commitment. */
  readonly tbsSha256: Buffer;
}

/**
 * Issues an end-entity certificate from the organisation CA, whose key is in this site's HSM, the way
 * device certificates are issued: prepared (TBS built, serial from the CSPRNG with the site's prefix),
 * linted, recorded (the intent commits before the HSM signs, so no certificate is ever signed that the
 * database does not know of), signed (the signature checked like every other CA signature), then stored
 * with its `org-certificate.issue` audit row in one transaction: the log says issued only once it is.
 */
export async function issueOrganisationCertificate(db: OrganisationIssuerStore | Pool, keyStore: Pick<KeyStore, 'getSigner'>, site: SiteId, order: OrganisationCertificateOrder): Promise<{ der: Buffer; serial: Buffer; keyId: Buffer }> {
  if ((order.purpose === 'client') !== (order.role !== undefined)) throw new FleetError('ORG_CERT_ROLE_INVALID', 'a client certificate names a role; server and audit certificates do not', { httpStatus: 400 });
  if (order.role === 'factory' && !order.manufacturerId) throw new FleetError('TOKEN_SCOPE_MISSING', 'a factory client certificate must name its manufacturer', { httpStatus: 400 });
  if (order.purpose === 'client' && !order.person) throw new FleetError('PERSON_REQUIRED', 'a client certificate is a credential of a person: name them', { httpStatus: 400 });
  if (order.purpose.startsWith('internal-') !== (order.internal !== undefined) || (order.internal && order.person)) throw new FleetError('ORG_CERT_PART_INVALID', "an internal TLS certificate names its host's part and no person; other certificates name no part", { httpStatus: 400 });
  // etcd trusts the organisation CA and takes a client certificate's CN as the etcd user when no
  // password is sent: a person named "root" (people's names allow it) would get etcd's root role with
  // their API client certificate. No certificate of this CA is named like an etcd user.
  const commonName = order.subject.commonName?.trim().toLowerCase();
  if (commonName !== undefined && ETCD_USER_NAMES.includes(commonName)) throw new FleetError('ORG_CERT_NAME_RESERVED', `no certificate of the organisation CA may be named "${order.subject.commonName}": etcd would take it for its user of that name; rename the person`, { httpStatus: 400 });
  const store: OrganisationIssuerStore = accessStoreOf(db);
  const ca = (await store.listCas()).find((c) => c.id === CA_IDS.organisation);
  if (!ca) throw new FleetError('CA_NOT_FOUND', 'no organisation CA: run `pnpm fleetpki ceremony init` first', { httpStatus: 409 });
  if (ca.status !== 'active') throw new FleetError('CA_NOT_ACTIVE', `the organisation CA is ${ca.status}`, { httpStatus: 409 });
  const issuer = parseCaCertificate(ca.certificate);
  const prefix = (await store.readSiteStates()).find((s) => s.site === site)?.serialPrefix;
  if (!prefix) throw new FleetError('SITE_UNKNOWN', `no site state for ${site}`);
  const prepared = prepareOrganisationCertificate(issuer, prefix, order, new Date(Math.floor(Date.now() / 1000) * 1000));
  // The key is found before anything is recorded: a site without it records nothing.
  const signer = await keyStore.getSigner(parsePkcs11Uri(ca.keyUri).object);
  await store.recordOrganisationIntent({ serial: prepared.serial, purpose: order.purpose, tbsSha256: prepared.tbsSha256 });
  const der = await signOrganisationCertificate(signer, issuer, prepared.linted);
  await store.storeOrganisationCertificate({
    serial: prepared.serial,
    purpose: order.purpose,
    subjectDn: prepared.subjectDn,
    role: order.role ?? null,
    manufacturerId: order.manufacturerId ?? null,
    keyId: prepared.keyId,
    certificate: der,
    notAfter: prepared.notAfter,
    personId: order.person?.id ?? null,
    createdBy: order.person?.createdBy ?? null,
    ...(order.internal ? { tlsPart: order.internal.part, tlsHost: order.internal.host } : {}),
  }, { site, actor: order.actor, action: 'org-certificate.issue', subject: prepared.serial.toString('hex'), details: { purpose: order.purpose, subject: prepared.subjectDn, role: order.role ?? null, ...internalDetails(order) } }, order.internal ? { supersedes: order.internal.supersedes } : undefined);
  return { der, serial: prepared.serial, keyId: prepared.keyId };
}

function internalDetails(order: OrganisationCertificateOrder): Record<string, unknown> {
  const internal = order.internal;
  return internal ? { part: internal.part, host: internal.host, names: order.names ?? [], supersedes: internal.supersedes?.toString('hex') ?? null } : {};
}

/** Prepare and lint: the TBS from the order (PROFILE.md, organisation certificates), refused unless every lint passes. */
export function prepareOrganisationCertificate(issuer: Pick<ParsedCaCertificate, 'subjectDer' | 'keyId'>, serialPrefix: number, order: OrganisationCertificateOrder, notBefore: Date): PreparedOrganisationCertificate {
  const serial = newSerial(serialPrefix);
  const notAfter = new Date(notBefore.getTime() + order.days * 86_400_000);
  const request = { subject: order.subject, purpose: order.purpose, issuerSubjectDer: issuer.subjectDer, issuerKeyId: issuer.keyId, serial, notBefore, notAfter, publicKeySpki: order.publicKeySpki, ...(order.names ? { names: order.names } : {}), ...(order.internal?.clientAuthToo ? { clientAuthToo: true } : {}) };
  const tbs = buildOrganisationTbs(request);
  const linted = lintOrganisationTbs({ ...tbs, request });
  const subjectDn = [order.subject.organization && `O=${order.subject.organization}`, order.subject.organizationalUnit && `OU=${order.subject.organizationalUnit}`, order.subject.commonName !== undefined && `CN=${order.subject.commonName}`].filter(Boolean).join(', ');
  return { linted, serial, keyId: tbs.keyId, notAfter, subjectDn, tbsSha256: createHash('sha256').update(tbs.der).digest() };
}

/** Signs a linted TBS (once) with the organisation CA's key and checks the signature against its certificate. */
async function signOrganisationCertificate(signer: { sign(data: Uint8Array): Promise<Buffer> }, issuer: Pick<ParsedCaCertificate, 'publicKeySpki'>, linted: LintedOrganisationTbs): Promise<Buffer> {
  const tbs = linted.redeem();
  const signature = await signer.sign(tbs.der);
  if (!verify('sha256', tbs.der, createPublicKey({ key: issuer.publicKeySpki, format: 'der', type: 'spki' }), signature)) throw new FleetError('HSM_SIGNATURE_INVALID', "the organisation CA key's signature does not verify", { httpStatus: 503 });
  return assembleSignedCertificate(tbs.der, signature);
}
