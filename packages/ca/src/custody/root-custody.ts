import { createHash, createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import { FleetError, isUuid, type SiteId } from '@fleetpki/core';
import { parsePkcs11Uri, type CustodyKeyStore, type KeyRef, type SigningKeyStore } from '@fleetpki/hsm';
import type { CaRecord } from '@fleetpki/store';
import { parseCaCertificate } from '@fleetpki/x509';
import { checkCustodians, kekCheckValue, rebuildKekFrom, splitKek, type CustodianShare, type CustodyWrap } from './key-custody.js';
import type { HsmAuditStore } from './store.js';

export const ROOT_BACKUP_FORMAT = 'fleetpki-root-backup/1';

/**
 * A second copy of the offline root (issue 36): the root keys wrapped under a KEK that exists only as
 * custodians' shares, written to a file for offline media, never to the CA's database. A site's
 * `custody restore` reads its wrapped keys from the database, so it can never put a root key into a
 * site token; only `ceremony root-restore`, into a root HSM, reads this file.
 */
export interface RootBackup {
  readonly format: typeof ROOT_BACKUP_FORMAT;
  readonly kekId: string;
  /** kekCheckValue(KEK), base64: the shares are checked against it before anything is unwrapped. */
  readonly kekCheck: string;
  readonly custodians: number;
  readonly threshold: number;
  readonly createdAt: string;
  readonly keys: readonly { rootId: string; label: string; id: string; mechanism: 'aes-key-wrap-pad'; wrapped: string; publicKeySpki: string }[];
}

/** The store side of the root's custody: the roots (to find their keys and check a restore) and the audit log. */
export interface RootCustodyStore extends HsmAuditStore {
  listCas(): Promise<CaRecord[]>;
}

/** What a restore needs of the receiving root token (openRemoteKeyStore gives it). */
export type RootCopyTarget = Pick<CustodyKeyStore, 'tokenLabel' | 'hasKey' | 'describeKey' | 'getSigner' | 'unwrapPrivateKey'>;

export interface RootCustodyCeremony {
  readonly store: RootCustodyStore;
  /** The offline root's key store, opened with the custodians' PIN (to describe the keys before wrapping). */
  readonly rootKeyStore: SigningKeyStore;
  readonly site: SiteId;
  readonly actor: string;
}

/** The active roots whose keys are in `tokenLabel` (a retired root needs no further copy). */
function rootKeys(cas: readonly CaRecord[], tokenLabel: string): { root: CaRecord; ref: KeyRef }[] {
  return cas
    .filter((c) => c.kind === 'root' && c.status === 'active')
    .map((root) => ({ root, uri: parsePkcs11Uri(root.keyUri) }))
    .filter(({ uri }) => uri.token === tokenLabel)
    .map(({ root, uri }) => ({ root, ref: { label: uri.object, ...(uri.id ? { id: uri.id } : {}) } }));
}

/**
 * The root's custody ceremony: the root token's security officer makes a trusted KEK in a session of
 * its own (`wrap`, the same HSM step as the site custody), every live root key that may leave its token
 * wrapped is wrapped under it, the KEK is split into shares and forgotten. A root generated before roots
 * could be copied (CKA_EXTRACTABLE false) is named and left out: only a root rollover to a new,
 * copyable root gives such an installation a second copy.
 */
export async function createRootCustody(
  ceremony: RootCustodyCeremony & { custodians: number; threshold: number; wrap: CustodyWrap; deliver?: (backup: RootBackup, shares: readonly CustodianShare[]) => Promise<void> },
): Promise<{ backup: RootBackup; shares: CustodianShare[]; uncopyable: string[]; absent: string[] }> {
  checkCustodians(ceremony.custodians, ceremony.threshold);
  if (await ceremony.store.isInRecovery()) throw new FleetError('SITE_STANDBY', 'this database is a standby; run the root custody ceremony against the active site (its audit log)');
  const copyable: { root: CaRecord; ref: KeyRef }[] = [];
  const uncopyable: string[] = [];
  // A root whose key is not in this HSM (made with the other copy) is named: its custody runs there.
  const absent: string[] = [];
  for (const key of rootKeys(await ceremony.store.listCas(), ceremony.rootKeyStore.tokenLabel)) {
    if (!(await ceremony.rootKeyStore.hasKey(key.ref))) {
      absent.push(key.root.id);
      continue;
    }
    const info = await ceremony.rootKeyStore.describeKey(key.ref);
    if (!info.publicKeySpki.equals(parseCaCertificate(key.root.certificate).publicKeySpki)) throw new FleetError('CA_KEY_MISMATCH', `the key of root ${key.root.id} in token "${ceremony.rootKeyStore.tokenLabel}" does not match its certificate`);
    if (info.extractable && info.wrapWithTrusted) copyable.push(key);
    else uncopyable.push(key.root.id);
  }
  if (copyable.length === 0) {
    throw new FleetError('ROOT_NOT_COPYABLE', `no root key in token "${ceremony.rootKeyStore.tokenLabel}" may leave it, even wrapped (${uncopyable.join(', ') || 'no live root'}): roll over to a copyable root first (\`ceremony root-rollover\`)`, { httpStatus: 409 });
  }
  const kek = randomBytes(32);
  try {
    const kekId = randomUUID();
    const { privateKeys } = await ceremony.wrap(kek, { privateKeys: copyable.map((k) => k.ref), secretKeys: [] });
    const backup: RootBackup = {
      format: ROOT_BACKUP_FORMAT,
      kekId,
      kekCheck: kekCheckValue(kek).toString('base64'),
      custodians: ceremony.custodians,
      threshold: ceremony.threshold,
      createdAt: new Date().toISOString(),
      keys: privateKeys.map((w) => ({ rootId: copyable.find((k) => k.ref.label === w.label)!.root.id, label: w.label, id: w.id.toString('hex'), mechanism: 'aes-key-wrap-pad', wrapped: w.wrapped.toString('base64'), publicKeySpki: w.publicKeySpki.toString('base64') })),
    };
    const shares = await splitKek(kek, kekId, ceremony.custodians, ceremony.threshold);
    // On the custodians' media before the audit says it exists: a write that fails leaves no record of a copy nobody holds.
    await ceremony.deliver?.(backup, shares);
    await ceremony.store.appendAudit({
      site: ceremony.site,
      actor: ceremony.actor,
      action: 'ceremony.root-custody',
      subject: kekId,
      details: { roots: backup.keys.map((k) => k.rootId), uncopyable, absent, custodians: ceremony.custodians, threshold: ceremony.threshold, backupSha256: backupDigest(backup) },
    });
    return { backup, shares, uncopyable, absent };
  } finally {
    kek.fill(0);
  }
}

function backupDigest(backup: RootBackup): string {
  return createHash('sha256').update(JSON.stringify(backup)).digest('hex');
}

/** Reads a root backup file, naming what is wrong with it. */
export function parseRootBackup(text: string, source: string): RootBackup {
  const bad = (what: string) => new FleetError('ROOT_BACKUP_INVALID', `${source}: ${what}`, { httpStatus: 400 });
  let v: Partial<RootBackup>;
  try {
    v = JSON.parse(text) as Partial<RootBackup>;
  } catch {
    throw bad('not a fleetpki root backup (not JSON)');
  }
  if (v.format !== ROOT_BACKUP_FORMAT) throw bad(`format must be ${ROOT_BACKUP_FORMAT}`);
  if (typeof v.kekId !== 'string' || !isUuid(v.kekId)) throw bad('kekId missing or malformed');
  if (typeof v.kekCheck !== 'string' || Buffer.from(v.kekCheck, 'base64').length !== 16) throw bad('kekCheck must be the base64 of 16 bytes');
  if (!Number.isInteger(v.custodians) || !Number.isInteger(v.threshold)) throw bad('custodians and threshold must be integers');
  checkCustodians(v.custodians!, v.threshold!);
  if (!Array.isArray(v.keys) || v.keys.length === 0) throw bad('no keys');
  for (const k of v.keys) {
    if (typeof k?.rootId !== 'string' || typeof k.label !== 'string' || typeof k.id !== 'string' || !/^([0-9a-f]{2})+$/.test(k.id) || k.mechanism !== 'aes-key-wrap-pad' || typeof k.wrapped !== 'string' || typeof k.publicKeySpki !== 'string') {
      throw bad('a key entry lacks rootId, label, id (hex), mechanism aes-key-wrap-pad, wrapped or publicKeySpki');
    }
  }
  return v as RootBackup;
}

/**
 * Restores the root keys of `backup` into `target`, a token of a root HSM (never a site's: the caller
 * opens only a root HSM), from the custodians' shares. Nothing of the file is trusted but the wrapped
 * blobs: each key goes under the label and CKA_ID of its root's key URI in the store, must carry the
 * public key of that root's certificate, and must sign a probe that verifies under it (a key found
 * already present too). Every entry is checked before anything is unwrapped, and the audit event is
 * written whatever happens, naming what was restored. Restored keys may be copied again (wrapped under a
 * trusted key only), so a copy can make the next copy.
 */
export async function restoreRootFromShares(
  ceremony: { store: RootCustodyStore; target: RootCopyTarget; site: SiteId; actor: string },
  backup: RootBackup,
  shares: readonly CustodianShare[],
): Promise<{ restored: string[]; alreadyPresent: string[] }> {
  const roots = new Map((await ceremony.store.listCas()).filter((c) => c.kind === 'root' && c.status === 'active').map((c) => [c.id, c]));
  const plan = backup.keys.map((key) => {
    const root = roots.get(key.rootId);
    if (!root) throw new FleetError('CA_NOT_FOUND', `the backup holds root ${key.rootId}, which is not an active root of this CA`, { httpStatus: 404 });
    const spki = parseCaCertificate(root.certificate).publicKeySpki;
    if (!Buffer.from(key.publicKeySpki, 'base64').equals(spki)) throw new FleetError('CA_KEY_MISMATCH', `the backup's public key for root ${key.rootId} is not its certificate's`);
    const uri = parsePkcs11Uri(root.keyUri);
    return { rootId: root.id, spki, wrapped: Buffer.from(key.wrapped, 'base64'), ref: { label: uri.object, id: uri.id ?? Buffer.from(key.id, 'hex') } };
  });
  for (const s of shares) {
    if (s.threshold !== backup.threshold || s.custodians !== backup.custodians) throw new FleetError('CUSTODY_SHARES_MISMATCH', `share ${s.custodian} says ${s.threshold} of ${s.custodians}, the backup ${backup.threshold} of ${backup.custodians}`, { httpStatus: 400 });
  }
  const { kek } = await rebuildKekFrom(shares, async (kekId) => {
    if (kekId !== backup.kekId) throw new FleetError('CUSTODY_SHARES_MISMATCH', `the shares are for key-encryption key ${kekId}, the backup for ${backup.kekId}`, { httpStatus: 400 });
    return { custodians: backup.custodians, threshold: backup.threshold, kekCheck: Buffer.from(backup.kekCheck, 'base64') };
  });
  const restored: string[] = [];
  const alreadyPresent: string[] = [];
  let failure: string | undefined;
  try {
    for (const key of plan) {
      const present = await ceremony.target.hasKey(key.ref);
      if (!present) await ceremony.target.unwrapPrivateKey({ ...key.ref, mechanism: 'aes-key-wrap-pad', wrapped: key.wrapped, publicKeySpki: key.spki }, kek, { cloneable: true });
      const probe = randomBytes(32);
      if (!verify('sha256', probe, createPublicKey({ key: key.spki, format: 'der', type: 'spki' }), await (await ceremony.target.getSigner(key.ref)).sign(probe))) {
        throw new FleetError('CA_KEY_MISMATCH', `the key ${present ? 'present' : 'unwrapped'} as "${key.ref.label}" in token "${ceremony.target.tokenLabel}" does not sign for root ${key.rootId}'s public key`);
      }
      (present ? alreadyPresent : restored).push(key.rootId);
    }
    return { restored, alreadyPresent };
  } catch (err) {
    failure = (err as Error).message;
    throw err;
  } finally {
    kek.fill(0);
    await ceremony.store.appendAudit({ site: ceremony.site, actor: ceremony.actor, action: 'ceremony.root-restore', subject: backup.kekId, details: { token: ceremony.target.tokenLabel, restored, alreadyPresent, ...(failure ? { failure } : {}) } });
  }
}
