import { verify, createPublicKey } from 'node:crypto';
import { FleetError, type SiteId } from '@fleetpki/core';
import { parsePkcs11Uri, type KeyStore } from '@fleetpki/hsm';
import type { Pool, Role } from '@fleetpki/store';
import { assembleSignedCertificate, buildOrganisationTbs, parseCaCertificate, type CaName, type OrganisationPurpose } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { newSerial } from '../issuance/serials.js';
import { accessStoreOf } from './postgres-store.js';
import type { OrganisationIssuerStore } from './store.js';

export interface OrganisationCertificateOrder {
  readonly purpose: OrganisationPurpose;
  readonly subject: CaName;
  readonly publicKeySpki: Buffer;
  readonly days: number;
  /** SAN of a server: host names and IP addresses. */
  readonly names?: readonly string[];
  /** For client certificates: the role (and for factories the manufacturer) the certificate stands for. */
  readonly role?: Role;
  readonly manufacturerId?: string;
  /** For client certificates: the person it is a credential of, and the administrator who had it issued. */
  readonly person?: { readonly id: string; readonly createdBy: string | null };
  readonly actor: string;
}

/**
 * Issues an end-entity certificate from the organisation CA, whose key is in this site's HSM. Recorded
 * (and audited) before it is returned; the signature is checked like every other CA signature.
 */
export async function issueOrganisationCertificate(db: OrganisationIssuerStore | Pool, keyStore: Pick<KeyStore, 'getSigner'>, site: SiteId, order: OrganisationCertificateOrder): Promise<{ der: Buffer; serial: Buffer; keyId: Buffer }> {
  if ((order.purpose === 'client') !== (order.role !== undefined)) throw new FleetError('ORG_CERT_ROLE_INVALID', 'a client certificate names a role; server and audit certificates do not', { httpStatus: 400 });
  if (order.role === 'factory' && !order.manufacturerId) throw new FleetError('TOKEN_SCOPE_MISSING', 'a factory client certificate must name its manufacturer', { httpStatus: 400 });
  if (order.purpose === 'client' && !order.person) throw new FleetError('PERSON_REQUIRED', 'a client certificate is a credential of a person: name them', { httpStatus: 400 });
  const store: OrganisationIssuerStore = accessStoreOf(db);
  const ca = (await store.listCas()).find((c) => c.id === CA_IDS.organisation);
  if (!ca) throw new FleetError('CA_NOT_FOUND', 'no organisation CA: run `pnpm fleetpki ceremony init` first', { httpStatus: 409 });
  if (ca.status !== 'active') throw new FleetError('CA_NOT_ACTIVE', `the organisation CA is ${ca.status}`, { httpStatus: 409 });
  const issuer = parseCaCertificate(ca.certificate);
  const prefix = (await store.readSiteStates()).find((s) => s.site === site)?.serialPrefix;
  if (!prefix) throw new FleetError('SITE_UNKNOWN', `no site state for ${site}`);
  const serial = newSerial(prefix);
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + order.days * 86_400_000);
  const tbs = buildOrganisationTbs({ subject: order.subject, purpose: order.purpose, issuerSubjectDer: issuer.subjectDer, issuerKeyId: issuer.keyId, serial, notBefore, notAfter, publicKeySpki: order.publicKeySpki, ...(order.names ? { names: order.names } : {}) });
  const signer = await keyStore.getSigner(parsePkcs11Uri(ca.keyUri).object);
  const signature = await signer.sign(tbs.der);
  if (!verify('sha256', tbs.der, createPublicKey({ key: issuer.publicKeySpki, format: 'der', type: 'spki' }), signature)) throw new FleetError('HSM_SIGNATURE_INVALID', "the organisation CA key's signature does not verify", { httpStatus: 503 });
  const der = assembleSignedCertificate(tbs.der, signature);
  const subjectDn = [order.subject.organization && `O=${order.subject.organization}`, order.subject.organizationalUnit && `OU=${order.subject.organizationalUnit}`, `CN=${order.subject.commonName}`].filter(Boolean).join(', ');
  await store.recordOrganisationCertificate(
    { serial, purpose: order.purpose, subjectDn, role: order.role ?? null, manufacturerId: order.manufacturerId ?? null, keyId: tbs.keyId, certificate: der, notAfter, personId: order.person?.id ?? null, createdBy: order.person?.createdBy ?? null },
    { site, actor: order.actor, action: 'org-certificate.issue', subject: serial.toString('hex'), details: { purpose: order.purpose, subject: subjectDn, role: order.role ?? null } },
  );
  return { der, serial, keyId: tbs.keyId };
}
