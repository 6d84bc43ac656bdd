import { createHash } from 'node:crypto';
import { FleetError, type SiteId } from '@fleetpki/core';
import type { KeyStore } from '@fleetpki/hsm';
import type { Pool } from '@fleetpki/store';
import { parseCaCertificate, subjectKeyIdMethod2 } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { issueOrganisationCertificate } from './organisation-issuer.js';
import { accessStoreOf } from './postgres-store.js';
import type { CmpProtectionStore, CmpSecretStore } from './store.js';

/** What a CMP reference's secret is derived from, besides the master key: domain-separated from device keys. */
function derivationData(reference: string, version: number): Buffer {
  return createHash('sha256').update(`fleetpki-cmp-secret-v1\0${reference}\0${version}`).digest().subarray(0, 16);
}
const DERIVATION_MESSAGE = Buffer.from('fleetpki cmp shared secret for password-based MAC (RFC 4211 4.4)');

export const CMP_REFERENCE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Factories' shared secrets for CMP's password-based MAC (first contact, RFC 9483 4.1.1; `openssl cmp
 * -ref <reference> -secret pass:<secret>`). PBM needs the secret itself on the server, so a hash as for
 * API tokens will not do; instead of storing it encrypted, each secret is derived in the HSM (AES-CMAC
 * under a key diversified from the active device MAC master key by the reference and its version,
 * the same HSM operation as device keys, with data of its own). The database holds the reference, its
 * manufacturer and the version; both sites derive the same secret because custody clones the master
 * keys; issuing a new version replaces the secret.
 */
export class CmpSharedSecrets {
  /**
   * Secrets derived in the last minute, by reference, version and master key: a request naming a
   * reference (they travel in clear) must not cost an HSM derivation each time, whoever sends it. The
   * record is still read for every request, so a withdrawal or a new version takes effect at once.
   */
  private readonly derived = new Map<string, { secret: Buffer; until: number }>();
  private static readonly KEEP_MS = 60_000;
  private readonly store: CmpSecretStore;

  /** `db`: the port (a Pool still works for callers not moved to ports yet). */
  constructor(
    db: CmpSecretStore | Pool,
    private readonly keyStore: Pick<KeyStore, 'deviceMac'>,
    private readonly site: SiteId,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.store = accessStoreOf(db);
  }

  /** A new secret for `reference` (a new version when it exists): returned once, to give to the factory. */
  async issue(reference: string, manufacturerId: string, actor: string): Promise<{ reference: string; version: number; secret: string }> {
    if (!CMP_REFERENCE.test(reference)) throw new FleetError('CMP_REFERENCE_INVALID', `a CMP reference is 1 to 64 letters, digits, ".", "_" or "-", not "${reference.slice(0, 70)}"`, { httpStatus: 400 });
    const master = (await this.store.listMasterKeys()).filter((m) => m.role === 'mac' && m.status === 'active').sort((a, b) => b.version - a.version)[0];
    if (!master) throw new FleetError('DEVICE_MASTER_KEY_MISSING', 'CMP secrets are derived from the active device MAC master key, and there is none: `pnpm fleetpki keys master create --role mac`', { httpStatus: 409 });
    const record = await this.store.issueCmpSecret(this.site, { reference, manufacturerId, masterLabel: master.keyLabel, actor });
    if (record === 'unknown-manufacturer') throw new FleetError('MANUFACTURER_NOT_FOUND', `no manufacturer ${manufacturerId.slice(0, 64)}`, { httpStatus: 404 });
    if (record === 'foreign') throw new FleetError('CMP_REFERENCE_TAKEN', `CMP reference ${reference} belongs to another manufacturer`, { httpStatus: 409 });
    return { reference, version: record.version, secret: await this.derive(record.masterLabel, reference, record.version) };
  }

  /** The secret (as the bytes PBM hashes) and manufacturer of a live reference; undefined for an unknown or revoked one. */
  async secretFor(reference: string): Promise<{ secret: Buffer; manufacturerId: string; version: number } | undefined> {
    if (!CMP_REFERENCE.test(reference)) return undefined;
    const record = await this.store.getCmpSecret(reference);
    if (!record || record.revokedAt) return undefined;
    const key = `${reference}\0${record.version}\0${record.masterLabel}`;
    let kept = this.derived.get(key);
    if (!kept || kept.until < this.now()) {
      if (this.derived.size >= 10_000) this.derived.clear();
      kept = { secret: Buffer.from(await this.derive(record.masterLabel, reference, record.version), 'utf8'), until: this.now() + CmpSharedSecrets.KEEP_MS };
      this.derived.set(key, kept);
    }
    return { secret: kept.secret, manufacturerId: record.manufacturerId, version: record.version };
  }

  /** 128 bits as 32 hex digits: text, because clients take the secret as a password (`pass:`). */
  private async derive(masterLabel: string, reference: string, version: number): Promise<string> {
    return (await this.keyStore.deviceMac(masterLabel, derivationData(reference, version), DERIVATION_MESSAGE)).toString('hex');
  }
}

/** A site's CMP protection key and its certificate chain (the key's certificate first, then the organisation CA). */
export interface CmpProtectionKey {
  readonly certificate: Buffer;
  readonly chain: readonly Buffer[];
  /** The certificate's subject (Name DER): the responses' sender. */
  readonly subjectDer: Buffer;
  /** Its subjectKeyIdentifier: the responses' senderKID. */
  readonly keyId: Buffer;
  /** DER ECDSA signature over SHA-256 of `data`, in the HSM. */
  sign(data: Buffer): Promise<Buffer>;
}

/**
 * The site's CMP protection key (RFC 9483 3.3: responses are signed by the PKI management entity):
 * generated in the site's HSM on first use, never extractable (each site has its own, like the audit
 * key), certified once by the organisation CA with id-kp-cmcRA, so a client that trusts the root can
 * check every answer.
 */
export async function ensureCmpProtectionKey(db: CmpProtectionStore | Pool, keyStore: KeyStore, site: SiteId, actor: string): Promise<CmpProtectionKey> {
  const store: CmpProtectionStore = accessStoreOf(db);
  const label = `cmp-${site}`;
  if (!(await keyStore.hasKey(label))) await keyStore.generateSigningKey(label);
  const signer = await keyStore.getSigner(label);
  const keyId = subjectKeyIdMethod2(signer.publicKeySpki.subarray(signer.publicKeySpki.length - 65));
  let certificate = await store.findOrganisationCertificateByKey('cmp', keyId);
  if (!certificate) {
    certificate = (await issueOrganisationCertificate(store, keyStore, site, { purpose: 'cmp', subject: { organization: 'fleetpki', organizationalUnit: 'cmp', commonName: `fleetpki CMP site ${site}` }, publicKeySpki: signer.publicKeySpki, days: 3650, actor })).der;
  }
  const organisationCa = (await store.listCas()).find((c) => c.id === CA_IDS.organisation);
  if (!organisationCa) throw new FleetError('CA_NOT_FOUND', 'no organisation CA: run `pnpm fleetpki ceremony init` first', { httpStatus: 409 });
  return { certificate, chain: [certificate, organisationCa.certificate], subjectDer: parseCaCertificate(certificate).subjectDer, keyId, sign: (data) => signer.sign(data) };
}
