import { FleetError, type SiteId } from '@fleetpki/core';
import { formatPkcs11Uri, parsePkcs11Uri, type KeyInfo, type SigningKeyStore } from '@fleetpki/hsm';
import type { CaKind, CaRecord } from '@fleetpki/store';
import { assembleSignedCertificate, buildCaTbs, parseCaCertificate, type CaName } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { rootSigns } from './root-ceremonies.js';
import { newSerial } from '../issuance/serials.js';
import type { CaCeremonyStore } from './store.js';

export interface CeremonyOptions {
  readonly store: CaCeremonyStore;
  /** Token of the offline root (config.rootTokenLabel), in its own HSM (openRemoteKeyStore). */
  readonly rootKeyStore: SigningKeyStore;
  /** The active site's token, holding the online CA keys. */
  readonly siteKeyStore: SigningKeyStore;
  readonly site: SiteId;
  readonly serialPrefix: number;
  readonly actor: string;
  readonly now?: Date;
}

export interface CeremonyResult {
  readonly created: boolean;
  readonly chain: readonly CaRecord[];
}

interface CaPlan {
  readonly id: string;
  readonly kind: CaKind;
  readonly name: CaName;
  readonly years: number;
  readonly pathLength?: number;
  readonly store: SigningKeyStore;
  /** The online CA keys are cloned into the standby's HSM; the root never leaves its token. */
  readonly cloneable: boolean;
}

function addYears(date: Date, years: number): Date {
  const d = new Date(date);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

/**
 * Checks every recorded CA's key against its certificate; throws CA_KEY_MISMATCH naming the first that
 * differs. A revoked CA's key is not looked for: nothing may sign with it, custody does not carry it to a
 * new token, and after a rebuild from custody (a disaster) it is rightly gone.
 */
export async function verifyCaKeys(records: readonly CaRecord[], stores: readonly SigningKeyStore[]): Promise<void> {
  for (const record of records) {
    if (record.status === 'revoked') continue;
    const uri = parsePkcs11Uri(record.keyUri);
    // On a standby site the clone sits in that site's own token (the last store), under the same label and id.
    const store = stores.find((s) => s.tokenLabel === uri.token) ?? stores[stores.length - 1]!;
    const signer = await store.getSigner({ label: uri.object, ...(uri.id ? { id: uri.id } : {}) });
    if (!signer.publicKeySpki.equals(parseCaCertificate(record.certificate).publicKeySpki)) {
      throw new FleetError('CA_KEY_MISMATCH', `CA ${record.id}: the key "${uri.object}" in token "${store.tokenLabel}" does not match its certificate`);
    }
  }
}

/**
 * The key ceremony: a root CA key in the root's own token and a self-signed root certificate, then a
 * device issuing CA and an organisation CA, each with its key in the site token and a certificate signed
 * by the root. All keys are generated inside the HSM (sensitive; extractable only for wrapping, to clone
 * them into the standby site). Recorded in the store with an audit event, in one transaction.
 * Run again, it changes nothing: it checks that every key still matches its certificate.
 */
export async function runCeremony(options: CeremonyOptions): Promise<CeremonyResult> {
  const existing = await options.store.listCas();
  if (existing.length > 0) {
    await verifyCaKeys(existing, [options.rootKeyStore, options.siteKeyStore]);
    return { created: false, chain: existing };
  }
  const now = new Date(Math.floor((options.now ?? new Date()).getTime() / 1000) * 1000);
  const plans: CaPlan[] = [
    { id: CA_IDS.root, kind: 'root', name: { commonName: 'fleetpki Root CA', organization: 'fleetpki' }, years: 30, store: options.rootKeyStore, cloneable: true },
    // Short subject: it is copied into every device certificate's issuer field (PROFILE.md).
    { id: CA_IDS.deviceIssuing, kind: 'device-issuing', name: { commonName: 'FPD1' }, years: 25, pathLength: 0, store: options.siteKeyStore, cloneable: true },
    { id: CA_IDS.organisation, kind: 'organisation', name: { commonName: 'fleetpki Organisation CA', organization: 'fleetpki' }, years: 25, pathLength: 0, store: options.siteKeyStore, cloneable: true },
  ];
  const records: Omit<CaRecord, 'status'>[] = [];
  // The root too may leave its token wrapped under a trusted key only: the root's custody ceremony makes
  // a second offline copy with it (issue 36; a root that exists once loses every meter's hierarchy with it).
  const rootKey = await ensureKey(options.rootKeyStore, CA_IDS.root, true);
  const rootSigner = await options.rootKeyStore.getSigner({ label: rootKey.label, id: rootKey.id });
  let rootSubject: Buffer | undefined;
  let rootKeyId: Buffer | undefined;
  for (const plan of plans) {
    const info = plan.kind === 'root' ? rootKey : await ensureKey(plan.store, plan.id, plan.cloneable);
    const tbs = buildCaTbs({
      subject: plan.name,
      ...(rootSubject ? { issuerSubjectDer: rootSubject, issuerKeyId: rootKeyId! } : {}),
      serial: newSerial(options.serialPrefix),
      notBefore: now,
      notAfter: addYears(now, plan.years),
      publicKeySpki: info.publicKeySpki,
      ...(plan.pathLength !== undefined ? { pathLength: plan.pathLength } : {}),
    });
    const certificate = assembleSignedCertificate(tbs.der, await rootSigns(rootSigner, tbs.der, `CA ${plan.id}`));
    if (plan.kind === 'root') {
      rootSubject = tbs.subjectDer;
      rootKeyId = tbs.keyId;
    }
    const parsed = parseCaCertificate(certificate);
    records.push({
      id: plan.id,
      kind: plan.kind,
      parentId: plan.kind === 'root' ? null : CA_IDS.root,
      subjectDn: parsed.subjectText,
      keyUri: formatPkcs11Uri({ token: plan.store.tokenLabel, object: info.label, id: info.id, type: 'private' }),
      keyId: tbs.keyId,
      certificate,
      notAfter: parsed.notAfter,
    });
  }
  await options.store.recordCas(records, { site: options.site, actor: options.actor, action: 'ceremony.init', subject: CA_IDS.root, details: { cas: records.map((r) => ({ id: r.id, subject: r.subjectDn, keyUri: r.keyUri })) } });
  return { created: true, chain: await options.store.listCas() };
}

/**
 * The CA key labelled `label`: generated in the HSM, or (a ceremony interrupted after key generation)
 * the one already there, provided it is protected as fleetpki protects keys now. A key that can be
 * wrapped under any key (made by an older fleetpki) is refused: `fleetpki hsm check` tells what to do.
 */
async function ensureKey(store: SigningKeyStore, label: string, cloneable: boolean): Promise<KeyInfo> {
  if (!(await store.hasKey(label))) return store.generateSigningKey(label, { cloneable });
  const info = await store.describeKey(label);
  if (!info.sensitive || (info.extractable && !info.wrapWithTrusted)) {
    throw new FleetError('HSM_KEY_WEAK', `token "${store.tokenLabel}" already holds a key "${label}" that can leave it wrapped under any key (CKA_WRAP_WITH_TRUSTED off); run \`pnpm fleetpki hsm check\``);
  }
  return info;
}

/** The certificate of CA `id` (for chains written to files); CA_NOT_FOUND before the ceremony. */
export async function caCertificate(store: Pick<CaCeremonyStore, 'listCas'>, id: string): Promise<Buffer> {
  const ca = (await store.listCas()).find((c) => c.id === id);
  if (!ca) throw new FleetError('CA_NOT_FOUND', `no CA ${id}: run \`pnpm fleetpki ceremony init\` first`);
  return ca.certificate;
}
