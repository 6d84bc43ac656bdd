import { createPublicKey, verify } from 'node:crypto';
import { FleetError, type SiteId } from '@fleetpki/core';
import { formatPkcs11Uri, parsePkcs11Uri, type Signer, type SigningKeyStore } from '@fleetpki/hsm';
import type { CaKind, CaRecord } from '@fleetpki/store';
import { assembleSignedCertificate, buildCaTbs, buildCrlTbs, parseCaCertificate, type CaName, type CrlEntry } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { newSerial } from '../issuance/serials.js';
import { rootGenerations } from './root-generations.js';
import type { RootCeremonyStore } from './store.js';

/**
 * What only the offline root signs, each a ceremony run by custodians at the CLI with the root's HSM
 * and PIN (no service process ever opens the root token): a new subordinate CA, and the root's CRL of
 * CA certificates (ARL, RFC 5280 5.2.5 onlyContainsCACerts), published beside the device CRLs.
 */
export interface RootCeremony {
  readonly store: RootCeremonyStore;
  /** The offline root's key store (openRootKeyStore), opened with the custodians' PIN. */
  readonly rootKeyStore: SigningKeyStore;
  readonly site: SiteId;
  readonly actor: string;
  readonly now?: Date;
}

/**
 * A root's record and a signer for its key (found by the label and CKA_ID its URI records): the current
 * root (root-generations.ts), or `rootId`, an earlier generation still trusted (its ARL).
 */
export async function rootSigner(store: Pick<RootCeremonyStore, 'listCas' | 'rootLinks'>, rootKeyStore: SigningKeyStore, rootId?: string): Promise<{ root: CaRecord; signer: Signer }> {
  const cas = await store.listCas();
  const root = rootId === undefined ? rootGenerations(cas, await store.rootLinks()).current : cas.find((c) => c.id === rootId && c.kind === 'root');
  if (!root) throw new FleetError('CA_NOT_FOUND', `no root CA ${String(rootId).slice(0, 40)}`, { httpStatus: 404 });
  if (root.status !== 'active') throw new FleetError('CA_NOT_ACTIVE', `root ${root.id} is ${root.status}; it signs nothing more`, { httpStatus: 409 });
  const uri = parsePkcs11Uri(root.keyUri);
  const signer = await rootKeyStore.getSigner({ label: uri.object, ...(uri.id ? { id: uri.id } : {}) });
  if (!signer.publicKeySpki.equals(parseCaCertificate(root.certificate).publicKeySpki)) throw new FleetError('CA_KEY_MISMATCH', `the root key in token "${rootKeyStore.tokenLabel}" does not match the root certificate`);
  return { root, signer };
}

/** Signs `tbs` with the root and checks the signature before anything depends on it. */
export async function rootSigns(signer: Signer, tbs: Buffer, what: string): Promise<Buffer> {
  const signature = await signer.sign(tbs);
  if (!verify('sha256', tbs, createPublicKey({ key: signer.publicKeySpki, format: 'der', type: 'spki' }), signature)) {
    throw new FleetError('HSM_SIGNATURE_INVALID', `the root key's signature over ${what} does not verify`);
  }
  return signature;
}

/**
 * A new subordinate CA: its key generated in the site's HSM (cloneable under the trusted KEK only),
 * its certificate signed by the offline root, recorded with an audit event. Refuses an id in use.
 */
export async function createSubordinateCa(
  ceremony: RootCeremony & { siteKeyStore: SigningKeyStore; id: string; kind: Exclude<CaKind, 'root'>; name: CaName; years: number; serialPrefix: number },
): Promise<CaRecord> {
  if (!/^[a-z][a-z0-9]{1,15}$/.test(ceremony.id)) throw new FleetError('CA_ID_INVALID', `a CA id is 2-16 lower-case letters and digits starting with a letter (it appears in CRL URLs), got "${ceremony.id}"`, { httpStatus: 400 });
  if ((await ceremony.store.listCas()).some((c) => c.id === ceremony.id)) throw new FleetError('CA_EXISTS', `CA ${ceremony.id} exists already`, { httpStatus: 409 });
  const { root, signer } = await rootSigner(ceremony.store, ceremony.rootKeyStore);
  const rootCertificate = parseCaCertificate(root.certificate);
  const key = await ceremony.siteKeyStore.generateSigningKey(ceremony.id, { cloneable: true });
  const now = new Date(Math.floor((ceremony.now ?? new Date()).getTime() / 1000) * 1000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + ceremony.years);
  const tbs = buildCaTbs({ subject: ceremony.name, issuerSubjectDer: rootCertificate.subjectDer, issuerKeyId: rootCertificate.keyId, serial: newSerial(ceremony.serialPrefix), notBefore: now, notAfter, publicKeySpki: key.publicKeySpki, pathLength: 0 });
  const certificate = assembleSignedCertificate(tbs.der, await rootSigns(signer, tbs.der, `CA ${ceremony.id}`));
  const parsed = parseCaCertificate(certificate);
  const record = { id: ceremony.id, kind: ceremony.kind, parentId: root.id, subjectDn: parsed.subjectText, keyUri: formatPkcs11Uri({ token: ceremony.siteKeyStore.tokenLabel, object: key.label, id: key.id, type: 'private' }), keyId: tbs.keyId, certificate, notAfter: parsed.notAfter };
  await ceremony.store.recordCas([record], { site: ceremony.site, actor: ceremony.actor, action: 'ceremony.new-ca', subject: ceremony.id, details: { kind: ceremony.kind, subject: record.subjectDn, keyUri: record.keyUri } });
  return { ...record, status: 'active' };
}

/**
 * Renews a subordinate CA's certificate: same subject and key (so the certificates it issued stay
 * valid and identical in their issuer fields), a new serial and validity, signed by the offline root.
 * The previous certificate goes into the CA's history (the ARL lists it too if the CA is revoked).
 * It is signed by the current root: after a root rollover, renewing a CA moves it under the new root.
 */
export async function renewSubordinateCa(ceremony: RootCeremony & { caId: string; years: number; serialPrefix: number }): Promise<CaRecord> {
  const ca = (await ceremony.store.listCas()).find((c) => c.id === ceremony.caId);
  if (!ca || ca.kind === 'root') throw new FleetError('CA_NOT_FOUND', `no subordinate CA ${ceremony.caId.slice(0, 40)}`, { httpStatus: 404 });
  if (ca.status === 'revoked') throw new FleetError('CA_NOT_ACTIVE', `CA ${ca.id} is revoked; it is not renewed`, { httpStatus: 409 });
  const { root, signer } = await rootSigner(ceremony.store, ceremony.rootKeyStore);
  const rootCertificate = parseCaCertificate(root.certificate);
  const current = parseCaCertificate(ca.certificate);
  const now = new Date(Math.floor((ceremony.now ?? new Date()).getTime() / 1000) * 1000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + ceremony.years);
  const tbs = buildCaTbs({ subjectDer: current.subjectDer, issuerSubjectDer: rootCertificate.subjectDer, issuerKeyId: rootCertificate.keyId, serial: newSerial(ceremony.serialPrefix), notBefore: now, notAfter, publicKeySpki: current.publicKeySpki, pathLength: 0 });
  const certificate = assembleSignedCertificate(tbs.der, await rootSigns(signer, tbs.der, `the renewal of CA ${ca.id}`));
  await ceremony.store.renewCa(ca.id, root.id, certificate, notAfter, { site: ceremony.site, actor: ceremony.actor, action: 'ceremony.renew-ca', subject: ca.id, details: { previousSerial: current.serial.toString('hex'), serial: parseCaCertificate(certificate).serial.toString('hex'), notAfter: notAfter.toISOString() } });
  return { ...ca, parentId: root.id, certificate, notAfter };
}

/** Where a root's ARL is served, beside the device CRL shards (status responder: /crl/<root>/arl.crl). */
export function arlUrl(crlBaseUrl: string, rootId: string = CA_IDS.root): string {
  return `${crlBaseUrl.replace(/\/?$/, '/')}${rootId}/arl.crl`;
}

export interface ArlResult {
  readonly rootId: string;
  readonly crlNumber: bigint;
  readonly entries: readonly { caId: string; serial: string; reason: number }[];
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly der: Buffer;
}

/**
 * The root's CRL of CA certificates (ARL): every revoked subordinate CA's certificate with its time and
 * reason, numbered like the device CRLs (never backwards), stored as CRL shard 0 of the root so every
 * site's status responder serves it. An offline root publishes rarely: nextUpdate is `validityDays` on
 * (default 180) and the ceremony runs again after any CA revocation and before that date.
 */
export async function publishAuthorityRevocationList(ceremony: RootCeremony & { validityDays?: number; rootId?: string }): Promise<ArlResult> {
  const { root, signer } = await rootSigner(ceremony.store, ceremony.rootKeyStore, ceremony.rootId);
  const rootCertificate = parseCaCertificate(root.certificate);
  const revoked = (await ceremony.store.listCas()).filter((c) => c.kind !== 'root' && c.status === 'revoked');
  const entries: (CrlEntry & { caId: string })[] = [];
  for (const c of revoked) {
    // Every certificate the CA had that this root signed, renewals and certificates under an earlier
    // or later root generation told apart by issuer: any of them would otherwise still chain.
    for (const certificate of [c.certificate, ...(await ceremony.store.previousCaCertificates(c.id))]) {
      if (!parseCaCertificate(certificate).issuerDer.equals(rootCertificate.subjectDer)) continue;
      entries.push({ caId: c.id, serial: parseCaCertificate(certificate).serial, revokedAt: c.revokedAt ?? new Date(0), reason: c.revocationReason ?? 0 });
    }
  }
  entries.sort((a, b) => Buffer.compare(a.serial, b.serial));
  const thisUpdate = new Date(Math.floor((ceremony.now ?? new Date()).getTime() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + (ceremony.validityDays ?? 180) * 86_400_000);
  return ceremony.store.publishCrl(root.id, async (crlNumber) => {
    const tbs = buildCrlTbs({ issuerSubjectDer: rootCertificate.subjectDer, issuerKeyId: rootCertificate.keyId, thisUpdate, nextUpdate, crlNumber, scope: { caCertsOnly: true }, entries });
    const der = assembleSignedCertificate(tbs, await rootSigns(signer, tbs, 'the ARL'));
    const listed = entries.map((e) => ({ caId: e.caId, serial: e.serial.toString('hex'), reason: e.reason }));
    return {
      crl: { caId: root.id, shard: 0, kind: 'full', baseNumber: null, thisUpdate, nextUpdate, coversUntil: thisUpdate, entries: entries.length, der },
      event: { site: ceremony.site, actor: ceremony.actor, action: 'ceremony.arl', subject: root.id, details: { crlNumber: crlNumber.toString(), revoked: listed, nextUpdate: nextUpdate.toISOString() } },
      result: { rootId: root.id, crlNumber, entries: listed, thisUpdate, nextUpdate, der },
    };
  });
}

/**
 * The ARL of every active root generation (not retired) whose key is in this root token: an old root's ARL must not
 * lapse while meters still hold that root (`ceremony arl` without --root). Roots whose key is not in
 * the token opened are named in `skipped`.
 */
export async function publishEveryAuthorityRevocationList(ceremony: RootCeremony & { validityDays?: number }): Promise<{ published: ArlResult[]; skipped: string[] }> {
  const published: ArlResult[] = [];
  const skipped: string[] = [];
  for (const root of (await ceremony.store.listCas()).filter((c) => c.kind === 'root' && c.status === 'active')) {
    if (!(await ceremony.rootKeyStore.hasKey(parsePkcs11Uri(root.keyUri).object))) {
      skipped.push(root.id);
      continue;
    }
    published.push(await publishAuthorityRevocationList({ ...ceremony, rootId: root.id }));
  }
  if (published.length === 0) throw new FleetError('CA_KEY_MISMATCH', `no live root has its key in token "${ceremony.rootKeyStore.tokenLabel}" (${skipped.join(', ') || 'no live root'})`);
  return { published, skipped };
}
