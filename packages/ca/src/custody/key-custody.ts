import { createHash, createHmac, createPublicKey, randomBytes, randomUUID, timingSafeEqual, verify } from 'node:crypto';
import { combine, split } from 'shamir-secret-sharing';
import { FleetError, type SiteId, isUuid } from '@fleetpki/core';
import { parsePkcs11Uri, type CustodyWrapResult, type KeyRef, type CustodyKeyStore, type UnwrapOptions } from '@fleetpki/hsm';
import type { KeyBackupRecord } from '@fleetpki/store';
import { parseCaCertificate } from '@fleetpki/x509';
import type { KeyCustodyStore } from './store.js';

export const SHARE_FORMAT = 'fleetpki-kek-share/1';

/** What one custodian holds (on a smart card in production; a file here). */
export interface CustodianShare {
  readonly format: typeof SHARE_FORMAT;
  readonly kekId: string;
  readonly custodian: number;
  readonly custodians: number;
  readonly threshold: number;
  /** base64 of the Shamir share (GF(2^8), last byte is the share's x-coordinate). */
  readonly share: string;
}

/** 16 bytes that identify a KEK without revealing it: a restore checks the combined shares against it. */
export function kekCheckValue(kek: Uint8Array): Buffer {
  return createHmac('sha256', kek).update('fleetpki key-encryption key check v1').digest().subarray(0, 16);
}

/** The site token's CA keys (every CA but the offline root, which never leaves its token, and revoked CAs, which sign nothing more). */
async function siteCaKeys(store: KeyCustodyStore, tokenLabel: string): Promise<KeyRef[]> {
  return (await store.listCas())
    .filter((ca) => ca.kind !== 'root' && ca.status !== 'revoked')
    .map((ca) => parsePkcs11Uri(ca.keyUri))
    .filter((uri) => uri.token === tokenLabel)
    .map((uri) => ({ label: uri.object, ...(uri.id ? { id: uri.id } : {}) }));
}

/** Keys recorded before CKA_IDs were random carry the id fleetpki derived from the label then. */
function legacyKeyId(label: string): Buffer {
  return createHash('sha256').update(label).digest().subarray(0, 8);
}

/**
 * The HSM part of a custody ceremony (hsm custody-wrap.ts, run in an HSM process of its own): the
 * security officer makes `kek` a trusted session object, the CA and master keys are wrapped under it,
 * and it is gone when this resolves.
 */
export type CustodyWrap = (kek: Uint8Array, keys: { privateKeys: KeyRef[]; secretKeys: KeyRef[] }) => Promise<CustodyWrapResult>;

/**
 * Key-custody ceremony on the active site: a fresh AES-256 key-encryption key wraps every CA key of the
 * site's token (CKM_AES_KEY_WRAP_PAD, inside the HSM); the wrapped keys are stored (and so replicated to
 * the standby); the KEK itself leaves only as `custodians` Shamir shares, any `threshold` of which
 * rebuild it, and is then forgotten. Shamir splitting is done by an audited library
 * (shamir-secret-sharing); SoftHSM offers no secret-sharing mechanism, as real HSMs do with card sets.
 *
 * The CA and master keys can be wrapped only under a trusted key (CKA_WRAP_WITH_TRUSTED), which only
 * the token's security officer can make: `wrap` is that step, done where no other process can see the
 * key-encryption key (README "Key protection").
 */
export async function createKeyCustody(
  store: KeyCustodyStore,
  options: { custodians: number; threshold: number; site: SiteId; tokenLabel: string; actor: string; wrap: CustodyWrap },
): Promise<{ kekId: string; shares: CustodianShare[]; keys: string[] }> {
  const { custodians, threshold } = options;
  checkCustodians(custodians, threshold);
  const caKeys = await siteCaKeys(store, options.tokenLabel);
  if (caKeys.length === 0) throw new FleetError('CA_NOT_INITIALISED', `no CA keys in token "${options.tokenLabel}": run \`pnpm fleetpki ceremony init\` first`);
  // Device master keys (hybrid keys) go the same way, so the standby can issue device keys too.
  const masterKeys = (await store.listMasterKeys()).map((m) => ({ label: m.keyLabel, ...(m.keyObjectId ? { id: m.keyObjectId } : {}) }));
  const kek = randomBytes(32);
  try {
    const kekId = randomUUID();
    const { privateKeys: wrapped, secretKeys: masters } = await options.wrap(kek, { privateKeys: caKeys, secretKeys: masterKeys });
    const backups: KeyBackupRecord[] = [
      ...wrapped.map((w) => ({ kekId, keyLabel: w.label, keyObjectId: w.id, keyClass: 'private' as const, mechanism: w.mechanism, wrapped: w.wrapped, publicKeySpki: w.publicKeySpki })),
      ...masters.map((m) => ({ kekId, keyLabel: m.label, keyObjectId: m.id, keyClass: 'secret' as const, mechanism: 'aes-key-wrap' as const, wrapped: m.wrapped, checkValue: m.checkValue })),
    ];
    await store.recordCustody({ id: kekId, custodians, threshold, kekCheck: kekCheckValue(kek) }, backups, {
      site: options.site,
      actor: options.actor,
      action: 'custody.create',
      subject: kekId,
      details: { custodians, threshold, keys: [...wrapped.map((w) => w.label), ...masters.map((m) => m.label)], kek: "trusted session object of the ceremony's own HSM process, destroyed after wrapping" },
    });
    const shares = await splitKek(kek, kekId, custodians, threshold);
    return { kekId, shares, keys: [...wrapped.map((w) => w.label), ...masters.map((m) => m.label)] };
  } finally {
    kek.fill(0);
  }
}

/** M of N: at least two custodians needed, at most twenty shares. */
export function checkCustodians(custodians: number, threshold: number): void {
  if (!Number.isInteger(custodians) || !Number.isInteger(threshold) || threshold < 2 || custodians < threshold || custodians > 20) {
    throw new FleetError('CUSTODY_INVALID', `need 2 <= threshold <= custodians <= 20 (got ${threshold} of ${custodians})`, { httpStatus: 400 });
  }
}

/** The KEK as `custodians` Shamir shares, any `threshold` of which rebuild it (the caller then forgets the KEK). */
export async function splitKek(kek: Uint8Array, kekId: string, custodians: number, threshold: number): Promise<CustodianShare[]> {
  // The library wants a plain Uint8Array (a Buffer fails its check); the copy is wiped here.
  const secret = new Uint8Array(kek);
  try {
    const parts = await split(secret, custodians, threshold);
    return parts.map((p, i) => ({ format: SHARE_FORMAT, kekId, custodian: i + 1, custodians, threshold, share: Buffer.from(p).toString('base64') }) as const);
  } finally {
    secret.fill(0);
  }
}

/** Reads a custodian's share file, naming the file and the field at fault. */
export function parseCustodianShare(text: string, source: string): CustodianShare {
  let v: Partial<CustodianShare>;
  try {
    v = JSON.parse(text) as Partial<CustodianShare>;
  } catch {
    throw new FleetError('SHARE_INVALID', `${source}: not a fleetpki share (not JSON)`, { httpStatus: 400 });
  }
  const bad = (what: string) => new FleetError('SHARE_INVALID', `${source}: ${what}`, { httpStatus: 400 });
  if (v.format !== SHARE_FORMAT) throw bad(`format must be ${SHARE_FORMAT}`);
  if (typeof v.kekId !== 'string' || !isUuid(v.kekId)) throw bad('kekId missing or malformed');
  for (const f of ['custodian', 'custodians', 'threshold'] as const) if (!Number.isInteger(v[f]) || v[f]! < 1) throw bad(`${f} must be a positive integer`);
  if (typeof v.share !== 'string' || Buffer.from(v.share, 'base64').length !== 33) throw bad('share must be the base64 of 33 bytes');
  return v as CustodianShare;
}

export interface RestoreReport {
  readonly kekId: string;
  readonly restored: string[];
  readonly alreadyPresent: string[];
}

/** The KEK the shares rebuild, checked against the store's check value: the caller zeroes it. */
async function rebuildKek(store: KeyCustodyStore, shares: readonly CustodianShare[]): Promise<{ kekId: string; kek: Buffer }> {
  return rebuildKekFrom(shares, async (kekId) => {
    const kekRecord = await store.getKek(kekId);
    if (!kekRecord) throw new FleetError('CUSTODY_KEK_UNKNOWN', `no key-encryption key ${kekId} in this site's store (was the custody ceremony run, and has it replicated?)`, { httpStatus: 404 });
    return kekRecord;
  });
}

/** The KEK the shares rebuild, checked against the check value `record` gives for their KEK id: the caller zeroes it. */
export async function rebuildKekFrom(shares: readonly CustodianShare[], record: (kekId: string) => Promise<{ custodians: number; threshold: number; kekCheck: Buffer }>): Promise<{ kekId: string; kek: Buffer }> {
  if (shares.length === 0) throw new FleetError('CUSTODY_SHARES_INSUFFICIENT', 'no shares given', { httpStatus: 400 });
  const kekId = shares[0]!.kekId;
  if (shares.some((s) => s.kekId !== kekId)) throw new FleetError('CUSTODY_SHARES_MISMATCH', 'the shares belong to different key-encryption keys', { httpStatus: 400 });
  const kekRecord = await record(kekId);
  const distinct = new Map(shares.map((s) => [s.custodian, s]));
  if (distinct.size < kekRecord.threshold) {
    throw new FleetError('CUSTODY_SHARES_INSUFFICIENT', `${distinct.size} distinct custodian share(s) given; ${kekRecord.threshold} of ${kekRecord.custodians} are needed`, { httpStatus: 400 });
  }
  const combined = await combine([...distinct.values()].map((s) => new Uint8Array(Buffer.from(s.share, 'base64'))));
  const kek = Buffer.from(combined);
  combined.fill(0);
  if (!timingSafeEqual(kekCheckValue(kek), kekRecord.kekCheck)) {
    kek.fill(0);
    throw new FleetError('CUSTODY_SHARES_MISMATCH', 'the shares do not rebuild the key-encryption key: one of them is wrong or damaged', { httpStatus: 400 });
  }
  return { kekId, kek };
}

/**
 * Whether these shares would restore the keys, without touching any token: they rebuild the KEK (its
 * check value matches), and the labels of the keys wrapped under it. What a disaster drill checks before
 * anything is lost.
 */
export async function checkCustodyShares(store: KeyCustodyStore, shares: readonly CustodianShare[]): Promise<{ kekId: string; keys: string[] }> {
  const { kekId, kek } = await rebuildKek(store, shares);
  kek.fill(0);
  return { kekId, keys: (await store.listKeyBackups(kekId)).map((b) => b.keyLabel) };
}

/**
 * Restores the CA keys into this site's token (the standby's, typically) from M custodian shares: the
 * shares must name one KEK, be distinct and at least its threshold, and rebuild a KEK whose check value
 * matches the store's; each key is unwrapped inside the HSM as non-extractable and must then produce
 * signatures that verify under the public key recorded at wrapping time. Keys already present are
 * checked, not replaced. Reads only: works against a hot standby. `cloneable`: see CustodyKeyStore.
 */
export async function restoreKeysFromShares(store: KeyCustodyStore, keyStore: CustodyKeyStore, shares: readonly CustodianShare[], options: UnwrapOptions = {}): Promise<RestoreReport> {
  const { kekId, kek } = await rebuildKek(store, shares);
  try {
    const restored: string[] = [];
    const alreadyPresent: string[] = [];
    // A root key never enters a site token, whatever a database role put under this KEK (root-custody.ts).
    const roots = (await store.listCas()).filter((c) => c.kind === 'root');
    for (const backup of await store.listKeyBackups(kekId)) {
      const root = roots.find((r) => parsePkcs11Uri(r.keyUri).object === backup.keyLabel || (backup.keyClass === 'private' && parseCaCertificate(r.certificate).publicKeySpki.equals(backup.publicKeySpki)));
      if (root) throw new FleetError('CUSTODY_ROOT_KEY', `the backup under key-encryption key ${kekId} holds root ${root.id}'s key ("${backup.keyLabel}"): a root key goes only into a root HSM (ceremony root-restore)`, { httpStatus: 400 });
      const ref = { label: backup.keyLabel, id: backup.keyObjectId ?? legacyKeyId(backup.keyLabel) };
      if (backup.keyClass === 'secret') {
        const present = await keyStore.hasSecretKey(backup.keyLabel);
        const { checkValue } = present ? { checkValue: await keyStore.masterCheckValue(backup.keyLabel) } : await keyStore.unwrapSecretKey(ref, backup.wrapped, kek, options);
        if (!checkValue.equals(backup.checkValue)) throw new FleetError('CA_KEY_MISMATCH', `master key "${backup.keyLabel}" in token "${keyStore.tokenLabel}" does not match its check value`);
        (present ? alreadyPresent : restored).push(backup.keyLabel);
        continue;
      }
      if (await keyStore.hasKey(backup.keyLabel)) {
        const present = await keyStore.describeKey(backup.keyLabel);
        if (!present.publicKeySpki.equals(backup.publicKeySpki)) throw new FleetError('CA_KEY_MISMATCH', `token "${keyStore.tokenLabel}" holds a different key labelled "${backup.keyLabel}"`);
        alreadyPresent.push(backup.keyLabel);
        continue;
      }
      await keyStore.unwrapPrivateKey({ ...ref, mechanism: backup.mechanism, wrapped: backup.wrapped, publicKeySpki: backup.publicKeySpki }, kek, options);
      const probe = randomBytes(32);
      const signature = await (await keyStore.getSigner(ref)).sign(probe);
      if (!verify('sha256', probe, createPublicKey({ key: backup.publicKeySpki, format: 'der', type: 'spki' }), signature)) {
        throw new FleetError('CA_KEY_MISMATCH', `the key unwrapped as "${backup.keyLabel}" does not sign for its public key`);
      }
      restored.push(backup.keyLabel);
    }
    return { kekId, restored, alreadyPresent };
  } finally {
    kek.fill(0);
  }
}
