import { FleetError, type SiteId } from '@fleetpki/core';
import { formatPkcs11Uri } from '@fleetpki/hsm';
import type { CaRecord } from '@fleetpki/store';
import { assembleSignedCertificate, buildCaTbs, encodeName, parseCaCertificate, type CaName } from '@fleetpki/x509';
import { newSerial } from '../issuance/serials.js';
import { rootGenerations } from './root-generations.js';
import { rootSigner, rootSigns, type RootCeremony } from './root-ceremonies.js';
import type { RootRolloverStore } from './store.js';

export interface RootRollover {
  readonly root: CaRecord;
  readonly replaced: CaRecord;
  readonly newWithOld: Buffer;
  readonly oldWithNew: Buffer;
  /** The issuing CAs re-certified under the new root: id and new certificate. */
  readonly recertified: readonly { caId: string; certificate: Buffer }[];
}

const earliest = (a: Date, b: Date) => (a < b ? a : b);

/**
 * A root rollover (RFC 4210 4.4), a ceremony at the CLI with the offline root's token: a new root key
 * beside the old one, its self-signed certificate (NewWithNew), the two link certificates, and every
 * live device issuing CA under the old root re-certified under the new one (same key and subject, so
 * the certificates it issued chain through either of its certificates). All recorded in one
 * transaction with its audit event; the old root stays trusted and keeps signing its ARL.
 *
 * The organisation CA is left under the old root on purpose: it certifies this installation's own
 * hosts and people, whose trust stores the operators replace themselves (`renew-ca --ca org1` moves it).
 * Link certificates expire with the old root: after that no meter can rely on the old root anyway.
 * A run that fails after the key was generated leaves it in the HSM under that id: run again with a new id.
 */
export async function rollRootKey(ceremony: RootCeremony & { store: RootRolloverStore; id: string; name: CaName; years: number; serialPrefix: number }): Promise<RootRollover> {
  if (!/^[a-z][a-z0-9]{1,15}$/.test(ceremony.id)) throw new FleetError('CA_ID_INVALID', `a CA id is 2-16 lower-case letters and digits starting with a letter (it appears in ARL URLs), got "${ceremony.id}"`, { httpStatus: 400 });
  const cas = await ceremony.store.listCas();
  if (cas.some((c) => c.id === ceremony.id)) throw new FleetError('CA_EXISTS', `CA ${ceremony.id} exists already`, { httpStatus: 409 });
  const { root: replaced, signer: oldSigner } = await rootSigner(ceremony.store, ceremony.rootKeyStore);
  const old = parseCaCertificate(replaced.certificate);
  const now = new Date(Math.floor((ceremony.now ?? new Date()).getTime() / 1000) * 1000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + ceremony.years);
  if (notAfter <= old.notAfter) throw new FleetError('CA_VALIDITY_INVALID', `the new root must outlive the one it replaces (${old.notAfter.toISOString()}); --years ${ceremony.years} ends ${notAfter.toISOString()}`, { httpStatus: 400 });

  // Every check before a key is generated: a refused ceremony leaves nothing in the root's HSM.
  const subjectDer = encodeName(ceremony.name);
  if (cas.some((c) => c.kind === 'root' && parseCaCertificate(c.certificate).subjectDer.equals(subjectDer))) {
    throw new FleetError('CA_NAME_INVALID', 'the new root needs a name no root has had (e.g. "fleetpki Root CA G2"): a meter tells the generations apart by name as well as by key id', { httpStatus: 400 });
  }
  // Copyable under a trusted key only (CKA_WRAP_WITH_TRUSTED): the root's custody ceremony can make a
  // second offline copy of it, which the first generation's key never allowed. Always a fresh key: one
  // already under the approved id could have been planted by a PIN holder who saw the approval (HSM_KEY_EXISTS).
  const key = await ceremony.rootKeyStore.generateSigningKey(ceremony.id, { cloneable: true });
  const newSigner = await ceremony.rootKeyStore.getSigner({ label: key.label, id: key.id });
  const nwn = buildCaTbs({ subjectDer, serial: newSerial(ceremony.serialPrefix), notBefore: now, notAfter, publicKeySpki: key.publicKeySpki });
  const newWithNew = assembleSignedCertificate(nwn.der, await rootSigns(newSigner, nwn.der, `the new root ${ceremony.id}`));
  const linkEnd = earliest(old.notAfter, notAfter);
  const nwo = buildCaTbs({ subjectDer: nwn.subjectDer, issuerSubjectDer: old.subjectDer, issuerKeyId: old.keyId, serial: newSerial(ceremony.serialPrefix), notBefore: now, notAfter: linkEnd, publicKeySpki: key.publicKeySpki });
  const newWithOld = assembleSignedCertificate(nwo.der, await rootSigns(oldSigner, nwo.der, 'NewWithOld'));
  const own = buildCaTbs({ subjectDer: old.subjectDer, issuerSubjectDer: nwn.subjectDer, issuerKeyId: nwn.keyId, serial: newSerial(ceremony.serialPrefix), notBefore: now, notAfter: linkEnd, publicKeySpki: old.publicKeySpki });
  const oldWithNew = assembleSignedCertificate(own.der, await rootSigns(newSigner, own.der, 'OldWithNew'));

  const recertified: { caId: string; certificate: Buffer; notAfter: Date }[] = [];
  for (const ca of cas.filter((c) => c.parentId === replaced.id && c.kind === 'device-issuing' && c.status !== 'revoked')) {
    const current = parseCaCertificate(ca.certificate);
    const caNotAfter = earliest(current.notAfter, notAfter);
    const tbs = buildCaTbs({ subjectDer: current.subjectDer, issuerSubjectDer: nwn.subjectDer, issuerKeyId: nwn.keyId, serial: newSerial(ceremony.serialPrefix), notBefore: now, notAfter: caNotAfter, publicKeySpki: current.publicKeySpki, pathLength: 0 });
    recertified.push({ caId: ca.id, certificate: assembleSignedCertificate(tbs.der, await rootSigns(newSigner, tbs.der, `CA ${ca.id} under the new root`)), notAfter: caNotAfter });
  }

  const parsed = parseCaCertificate(newWithNew);
  const root = { id: ceremony.id, kind: 'root' as const, parentId: null, subjectDn: parsed.subjectText, keyUri: formatPkcs11Uri({ token: ceremony.rootKeyStore.tokenLabel, object: key.label, id: key.id, type: 'private' }), keyId: nwn.keyId, certificate: newWithNew, notAfter: parsed.notAfter };
  const serials = (der: Buffer) => parseCaCertificate(der).serial.toString('hex');
  await ceremony.store.recordRootRollover({ root, link: { oldRootId: replaced.id, newRootId: root.id, newWithOld, oldWithNew }, recertified }, {
    site: ceremony.site,
    actor: ceremony.actor,
    action: 'ceremony.root-rollover',
    subject: root.id,
    details: { replaces: replaced.id, subject: root.subjectDn, keyUri: root.keyUri, newWithNew: serials(newWithNew), newWithOld: serials(newWithOld), oldWithNew: serials(oldWithNew), recertified: recertified.map((r) => ({ caId: r.caId, serial: serials(r.certificate) })) },
  });
  return { root: { ...root, status: 'active' }, replaced, newWithOld, oldWithNew, recertified: recertified.map(({ caId, certificate }) => ({ caId, certificate })) };
}

/**
 * Ends a root's transition (RFC 7030 4.1.3 "after the transition"): once every meter holds the new root,
 * the old one is retired. EST /cacerts and CMP no longer hand out its links, `ceremony arl` no longer
 * signs its ARL, and the root's custody leaves it out. Its key stays in the root HSM; retirement is final.
 * Not the current root, not while a CA is under it, oldest generation first.
 */
export async function retireRoot(ceremony: { store: RootRolloverStore; site: SiteId; actor: string; rootId: string }): Promise<CaRecord> {
  const cas = await ceremony.store.listCas();
  const root = cas.find((c) => c.id === ceremony.rootId && c.kind === 'root');
  if (!root) throw new FleetError('CA_NOT_FOUND', `no root CA ${ceremony.rootId.slice(0, 40)}`, { httpStatus: 404 });
  if (root.status !== 'active') throw new FleetError('CA_NOT_ACTIVE', `root ${root.id} is ${root.status} already`, { httpStatus: 409 });
  const links = await ceremony.store.rootLinks();
  const { current } = rootGenerations(cas, links);
  if (current.id === root.id) throw new FleetError('CA_ROOT_CURRENT', `root ${root.id} is the current root: it is retired only once a rollover has replaced it`, { httpStatus: 409 });
  // The same rules as fp_root_retire (migrations/0049), which has the last word: said here first, named.
  const under = cas.filter((c) => c.parentId === root.id && c.status === 'active').map((c) => c.id);
  if (under.length) throw new FleetError('CA_ROOT_IN_USE', `active CAs are still under root ${root.id} (${under.join(', ')}): move them first (ceremony renew-ca)`, { httpStatus: 409 });
  const older = links.find((l) => l.newRootId === root.id && cas.find((c) => c.id === l.oldRootId)?.status === 'active');
  if (older) throw new FleetError('CA_ROOT_IN_USE', `root ${root.id} has an active predecessor (${older.oldRootId}): retire the oldest generation first`, { httpStatus: 409 });
  await ceremony.store.retireRoot(root.id, { site: ceremony.site, actor: ceremony.actor, action: 'ceremony.root-retire', subject: root.id, details: { current: current.id } });
  return { ...root, status: 'retired' };
}
