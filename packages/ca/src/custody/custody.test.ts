import assert from 'node:assert/strict';
import { X509Certificate, createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CustodyKeyStore, KeyInfo, KeyRef, SigningKeyStore, TrustedKeyStore } from '@fleetpki/hsm';
import type { AuditEvent, CaRecord, CrlRecord, KekRecord, KeyBackupRecord, MasterKeyRecord, RootLinkRecord } from '@fleetpki/store';
import { parseCaCertificate } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { caCertificate, runCeremony, verifyCaKeys } from './ceremony.js';
import { destroyTrustedKey, hardenTokenKeys } from './hsm-maintenance.js';
import { createKeyCustody, restoreKeysFromShares, type CustodyWrap } from './key-custody.js';
import { createSubordinateCa, publishAuthorityRevocationList, renewSubordinateCa } from './root-ceremonies.js';
import { caCertificatesForClients, rootGenerations } from './root-generations.js';
import { retireRoot, rollRootKey } from './root-rollover.js';
import { createRootCustody, parseRootBackup, restoreRootFromShares } from './root-custody.js';
import type { HsmAuditStore, KeyCustodyStore, RootRolloverStore } from './store.js';

/**
 * Custody's ceremonies against in-memory stores behind their narrow ports and software key stores:
 * what each records (and with which audit row), what it refuses, and that keys restored from custodian
 * shares are the keys that were wrapped. The PostgreSQL store and the HSM are covered by the
 * integration tests (test/ceremony, custody, custody-kek, device-keys).
 */

/** The custody tables in memory, as the PostgreSQL store keeps them (a transaction is one call here). */
class MemoryCustodyStore implements RootRolloverStore, KeyCustodyStore, HsmAuditStore {
  cas: CaRecord[] = [];
  links: RootLinkRecord[] = [];
  history = new Map<string, Buffer[]>();
  crls: CrlRecord[] = [];
  keks: KekRecord[] = [];
  backups: KeyBackupRecord[] = [];
  masters: MasterKeyRecord[] = [];
  audit: AuditEvent[] = [];
  inRecovery = false;

  async listCas(): Promise<CaRecord[]> {
    return this.cas.map((c) => ({ ...c }));
  }
  async recordCas(records: readonly Omit<CaRecord, 'status'>[], event: AuditEvent): Promise<void> {
    for (const r of records) this.cas.push({ ...r, status: 'active' });
    this.audit.push(event);
  }
  async renewCa(caId: string, parentId: string, certificate: Buffer, notAfter: Date, event: AuditEvent): Promise<void> {
    const ca = this.cas.find((c) => c.id === caId)!;
    this.history.set(caId, [...(this.history.get(caId) ?? []), ca.certificate]);
    Object.assign(ca, { parentId, certificate, notAfter });
    this.audit.push(event);
  }
  async rootLinks(): Promise<RootLinkRecord[]> {
    return this.links;
  }
  async retireRoot(rootId: string, event: AuditEvent): Promise<void> {
    this.cas = this.cas.map((c) => (c.id === rootId ? { ...c, status: 'retired' as const } : c));
    this.audit.push(event);
  }
  async recordRootRollover(rollover: { root: Omit<CaRecord, 'status'>; link: RootLinkRecord; recertified: readonly { caId: string; certificate: Buffer; notAfter: Date }[] }, event: AuditEvent): Promise<void> {
    this.cas.push({ ...rollover.root, status: 'active' });
    this.links.push(rollover.link);
    for (const r of rollover.recertified) {
      const ca = this.cas.find((c) => c.id === r.caId)!;
      this.history.set(r.caId, [...(this.history.get(r.caId) ?? []), ca.certificate]);
      Object.assign(ca, { parentId: rollover.root.id, certificate: r.certificate, notAfter: r.notAfter });
    }
    this.audit.push(event);
  }
  async previousCaCertificates(caId: string): Promise<Buffer[]> {
    return this.history.get(caId) ?? [];
  }
  async publishCrl<T>(caId: string, build: (crlNumber: bigint) => Promise<{ crl: Omit<CrlRecord, 'crlNumber'>; event: AuditEvent; result: T }>): Promise<T> {
    const crlNumber = BigInt(this.crls.filter((c) => c.caId === caId).length + 1);
    const { crl, event, result } = await build(crlNumber);
    this.crls.push({ ...crl, crlNumber });
    this.audit.push(event);
    return result;
  }
  async listMasterKeys(): Promise<MasterKeyRecord[]> {
    return this.masters;
  }
  async recordCustody(kek: Omit<KekRecord, 'createdAt'>, backups: readonly KeyBackupRecord[], event: AuditEvent): Promise<void> {
    this.keks.push({ ...kek, createdAt: new Date() });
    this.backups.push(...backups);
    this.audit.push(event);
  }
  async getKek(id: string): Promise<KekRecord | undefined> {
    return this.keks.find((k) => k.id === id);
  }
  async listKeyBackups(kekId: string): Promise<KeyBackupRecord[]> {
    return this.backups.filter((b) => b.kekId === kekId);
  }
  async isInRecovery(): Promise<boolean> {
    return this.inRecovery;
  }
  async appendAudit(event: AuditEvent): Promise<void> {
    this.audit.push(event);
  }
}

/** A token in software: P-256 signing keys (and AES master keys) that the custody fakes can wrap and unwrap. */
class SoftwareToken implements SigningKeyStore, CustodyKeyStore {
  readonly keys = new Map<string, { id: Buffer; key: KeyObject; spki: Buffer; cloneable: boolean }>();
  readonly secrets = new Map<string, { id: Buffer; value: Buffer }>();

  constructor(readonly tokenLabel: string) {}

  private find(ref: KeyRef | string) {
    const label = typeof ref === 'string' ? ref : ref.label;
    const k = this.keys.get(label);
    if (!k) throw Object.assign(new Error(`no key ${label}`), { code: 'HSM_KEY_NOT_FOUND' });
    return { label, ...k };
  }
  private info(label: string, k: { id: Buffer; spki: Buffer; cloneable: boolean }): KeyInfo {
    return { label, id: k.id, publicKeySpki: k.spki, sensitive: true, extractable: k.cloneable, wrapWithTrusted: true, alwaysSensitive: true, neverExtractable: !k.cloneable };
  }
  add(label: string, key: KeyObject, cloneable: boolean): KeyInfo {
    const spki = createPublicKeyDer(key);
    const entry = { id: randomBytes(8), key, spki, cloneable };
    this.keys.set(label, entry);
    return this.info(label, entry);
  }
  async generateSigningKey(label: string, options: { cloneable?: boolean } = {}): Promise<KeyInfo> {
    if (this.keys.has(label)) throw Object.assign(new Error(`a key labelled ${label} exists`), { code: 'HSM_KEY_EXISTS' });
    return this.add(label, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, options.cloneable ?? false);
  }
  async getSigner(ref: KeyRef | string) {
    const k = this.find(ref);
    return { algorithm: 'ecdsa-p256-sha256' as const, publicKeySpki: k.spki, sign: async (data: Uint8Array) => sign('sha256', data, k.key) };
  }
  async describeKey(ref: KeyRef | string): Promise<KeyInfo> {
    const k = this.find(ref);
    return this.info(k.label, k);
  }
  async hasKey(ref: KeyRef | string): Promise<boolean> {
    return this.keys.has(typeof ref === 'string' ? ref : ref.label);
  }
  async close(): Promise<void> {}
  async generateMasterKey(label: string): Promise<{ id: Buffer }> {
    const id = randomBytes(8);
    this.secrets.set(label, { id, value: randomBytes(32) });
    return { id };
  }
  async hasSecretKey(ref: KeyRef | string): Promise<boolean> {
    return this.secrets.has(typeof ref === 'string' ? ref : ref.label);
  }
  async masterCheckValue(ref: KeyRef | string): Promise<Buffer> {
    return checkValue(this.secrets.get(typeof ref === 'string' ? ref : ref.label)!.value);
  }
  async unwrapPrivateKey(wrapped: { label: string; id: Buffer; wrapped: Buffer }, kek: Uint8Array): Promise<KeyInfo> {
    const key = createPrivateKey({ key: unwrap(kek, wrapped.wrapped), format: 'der', type: 'pkcs8' });
    const entry = { id: wrapped.id, key, spki: createPublicKeyDer(key), cloneable: false };
    this.keys.set(wrapped.label, entry);
    return this.info(wrapped.label, entry);
  }
  async unwrapSecretKey(ref: KeyRef, wrapped: Buffer, kek: Uint8Array): Promise<{ checkValue: Buffer }> {
    const value = unwrap(kek, wrapped);
    this.secrets.set(ref.label, { id: ref.id ?? randomBytes(8), value });
    return { checkValue: checkValue(value) };
  }
}

function createPublicKeyDer(key: KeyObject): Buffer {
  return createPublicKey(key).export({ format: 'der', type: 'spki' });
}

const IV = Buffer.from('A65959A6', 'hex');
function wrap(kek: Uint8Array, data: Buffer): Buffer {
  const c = createCipheriv('id-aes256-wrap-pad', kek, IV);
  return Buffer.concat([c.update(data), c.final()]);
}
function unwrap(kek: Uint8Array, data: Buffer): Buffer {
  const d = createDecipheriv('id-aes256-wrap-pad', kek, IV);
  return Buffer.concat([d.update(data), d.final()]);
}
function checkValue(value: Buffer): Buffer {
  return createHash('sha256').update(value).digest().subarray(0, 3);
}

/** The HSM process of a custody ceremony, in software: wraps the named keys of `token` under the KEK. */
function softwareWrap(token: SoftwareToken): CustodyWrap {
  return async (kek, keys) => ({
    privateKeys: keys.privateKeys.map((ref) => {
      const k = token.keys.get(ref.label)!;
      return { label: ref.label, id: k.id, mechanism: 'aes-key-wrap-pad' as const, wrapped: wrap(kek, k.key.export({ format: 'der', type: 'pkcs8' })), publicKeySpki: k.spki };
    }),
    secretKeys: keys.secretKeys.map((ref) => {
      const s = token.secrets.get(ref.label)!;
      return { label: ref.label, id: s.id, wrapped: wrap(kek, s.value), checkValue: checkValue(s.value) };
    }),
  });
}

async function ceremony() {
  const store = new MemoryCustodyStore();
  const root = new SoftwareToken('root');
  const site = new SoftwareToken('site-a');
  const result = await runCeremony({ store, rootKeyStore: root, siteKeyStore: site, site: 'a', serialPrefix: 7, actor: 'custodian:alice' });
  return { store, root, site, result };
}

describe('the key ceremony through its port', () => {
  it('creates root, device issuing and organisation CAs, recorded with one ceremony.init audit row', async () => {
    const { store, root, site, result } = await ceremony();
    assert.equal(result.created, true);
    assert.deepEqual(result.chain.map((c) => c.id), [CA_IDS.root, CA_IDS.deviceIssuing, CA_IDS.organisation]);
    const rootCert = parseCaCertificate(result.chain[0]!.certificate);
    for (const ca of result.chain.slice(1)) assert.ok(parseCaCertificate(ca.certificate).publicKeySpki.length > 0 && ca.parentId === CA_IDS.root);
    assert.ok(rootCert.publicKeySpki.equals(root.keys.get(CA_IDS.root)!.spki), 'the root key is in the root token');
    assert.ok(site.keys.get(CA_IDS.deviceIssuing)!.cloneable && root.keys.get(CA_IDS.root)!.cloneable, 'every CA key cloneable (under a trusted key only), the root too');
    assert.deepEqual(store.audit.map((e) => [e.action, e.actor, e.subject]), [['ceremony.init', 'custodian:alice', CA_IDS.root]]);
    assert.deepEqual((store.audit[0]!.details!.cas as { id: string }[]).map((c) => c.id), [CA_IDS.root, CA_IDS.deviceIssuing, CA_IDS.organisation]);
  });

  it('run again, changes nothing and checks every key; a swapped key is CA_KEY_MISMATCH', async () => {
    const { store, root, site } = await ceremony();
    const again = await runCeremony({ store, rootKeyStore: root, siteKeyStore: site, site: 'a', serialPrefix: 7, actor: 'custodian:alice' });
    assert.equal(again.created, false);
    assert.equal(store.audit.length, 1);
    site.keys.delete(CA_IDS.organisation);
    await site.generateSigningKey(CA_IDS.organisation, { cloneable: true });
    await assert.rejects(verifyCaKeys(store.cas, [root, site]), { code: 'CA_KEY_MISMATCH' });
    assert.ok((await caCertificate(store, CA_IDS.root)).equals(store.cas[0]!.certificate));
    await assert.rejects(caCertificate(new MemoryCustodyStore(), CA_IDS.root), { code: 'CA_NOT_FOUND' });
  });

  it('a new subordinate CA, a renewal and the ARL are recorded with their audit rows; an id in use is refused', async () => {
    const { store, root, site } = await ceremony();
    const base = { store, rootKeyStore: root, site: 'a' as const, actor: 'custodian:bob', serialPrefix: 7 };
    const fpd2 = await createSubordinateCa({ ...base, siteKeyStore: site, id: 'fpd2', kind: 'device-issuing', name: { commonName: 'FPD2' }, years: 5 });
    assert.equal(fpd2.parentId, CA_IDS.root);
    await assert.rejects(createSubordinateCa({ ...base, siteKeyStore: site, id: 'fpd2', kind: 'device-issuing', name: { commonName: 'FPD2' }, years: 5 }), { code: 'CA_EXISTS' });
    const renewed = await renewSubordinateCa({ ...base, caId: 'fpd2', years: 6 });
    assert.ok(!renewed.certificate.equals(fpd2.certificate));
    assert.deepEqual(await store.previousCaCertificates('fpd2'), [fpd2.certificate]);
    store.cas = store.cas.map((c) => (c.id === 'fpd2' ? { ...c, status: 'revoked' as const, revokedAt: new Date(), revocationReason: 1 } : c));
    const first = await publishAuthorityRevocationList(base);
    const second = await publishAuthorityRevocationList(base);
    assert.deepEqual([first.crlNumber, second.crlNumber], [1n, 2n]);
    assert.equal(first.entries.length, 2, 'both certificates the revoked CA had');
    assert.equal(store.crls[0]!.shard, 0);
    assert.deepEqual(store.audit.map((e) => e.action), ['ceremony.init', 'ceremony.new-ca', 'ceremony.renew-ca', 'ceremony.arl', 'ceremony.arl']);
  });
});

describe('key custody through its port', () => {
  it('wraps the site CA keys and master keys under a KEK split into shares; any threshold of them restores the same keys', async () => {
    const { store, site } = await ceremony();
    const master = await site.generateMasterKey('dk-mac-v1');
    store.masters.push({ role: 'mac', version: 1, keyLabel: 'dk-mac-v1', keyObjectId: master.id, status: 'active' });
    const custody = await createKeyCustody(store, { custodians: 3, threshold: 2, site: 'a', tokenLabel: 'site-a', actor: 'custodian:alice', wrap: softwareWrap(site) });
    assert.deepEqual(custody.keys, [CA_IDS.deviceIssuing, CA_IDS.organisation, 'dk-mac-v1']);
    assert.deepEqual(store.audit.at(-1)!.action, 'custody.create');
    assert.equal(store.backups.length, 3);

    const standby = new SoftwareToken('site-a');
    await assert.rejects(restoreKeysFromShares(store, standby, custody.shares.slice(0, 1)), { code: 'CUSTODY_SHARES_INSUFFICIENT' });
    const report = await restoreKeysFromShares(store, standby, [custody.shares[2]!, custody.shares[0]!]);
    assert.deepEqual(report.restored, [CA_IDS.deviceIssuing, CA_IDS.organisation, 'dk-mac-v1']);
    assert.ok(standby.keys.get(CA_IDS.deviceIssuing)!.spki.equals(site.keys.get(CA_IDS.deviceIssuing)!.spki));
    const again = await restoreKeysFromShares(store, standby, custody.shares);
    assert.deepEqual(again.alreadyPresent, report.restored);
  });

  it('refuses bad parameters, a ceremony before the CA, and shares of another KEK', async () => {
    const empty = new MemoryCustodyStore();
    const token = new SoftwareToken('site-a');
    await assert.rejects(createKeyCustody(empty, { custodians: 2, threshold: 3, site: 'a', tokenLabel: 'site-a', actor: 'x', wrap: softwareWrap(token) }), { code: 'CUSTODY_INVALID' });
    await assert.rejects(createKeyCustody(empty, { custodians: 3, threshold: 2, site: 'a', tokenLabel: 'site-a', actor: 'x', wrap: softwareWrap(token) }), { code: 'CA_NOT_INITIALISED' });
    const { store, site } = await ceremony();
    const one = await createKeyCustody(store, { custodians: 3, threshold: 2, site: 'a', tokenLabel: 'site-a', actor: 'x', wrap: softwareWrap(site) });
    const two = await createKeyCustody(store, { custodians: 3, threshold: 2, site: 'a', tokenLabel: 'site-a', actor: 'x', wrap: softwareWrap(site) });
    await assert.rejects(restoreKeysFromShares(store, new SoftwareToken('b'), [one.shares[0]!, two.shares[1]!]), { code: 'CUSTODY_SHARES_MISMATCH' });
    await assert.rejects(restoreKeysFromShares(new MemoryCustodyStore(), new SoftwareToken('b'), one.shares), { code: 'CUSTODY_KEK_UNKNOWN' });
  });
});

describe('HSM maintenance records its own audit rows', () => {
  const trusted = (objects: number): TrustedKeyStore => ({ tokenLabel: 'site-a', listTrustedKeys: async () => [], destroyTrustedKey: async () => objects });
  const m = (store: MemoryCustodyStore) => ({ store, site: 'a' as const, actor: 'custodian:alice' });

  it('a destroyed trusted key is audited on the active site only; none by that label is HSM_KEY_NOT_FOUND', async () => {
    const store = new MemoryCustodyStore();
    await assert.rejects(destroyTrustedKey(m(store), trusted(0), 'planted'), { code: 'HSM_KEY_NOT_FOUND' });
    assert.equal(await destroyTrustedKey(m(store), trusted(2), 'planted'), 2);
    assert.deepEqual(store.audit, [{ site: 'a', actor: 'custodian:alice', action: 'hsm.trusted-key.destroy', subject: 'planted', details: { token: 'site-a', objects: 2 } }]);
    store.inRecovery = true;
    await destroyTrustedKey(m(store), trusted(1), 'planted');
    assert.equal(store.audit.length, 1, 'a standby records nothing');
  });

  it('harden records what it restricted', async () => {
    const store = new MemoryCustodyStore();
    await hardenTokenKeys({ ...m(store), tokenLabel: 'site-a' }, async () => ({ restricted: ['fpd1'], movedPinFiles: ['a', 'b'] }));
    assert.deepEqual(store.audit, [{ site: 'a', actor: 'custodian:alice', action: 'hsm.harden', subject: 'site-a', details: { restricted: ['fpd1'], movedPinFiles: 2 } }]);
  });
});

describe('a root rollover through its port', () => {
  it('a new root with its links; the device issuing CA re-certified under it, the organisation CA not; each root signs its own ARL', async () => {
    const { store, root } = await ceremony();
    const base = { store, rootKeyStore: root, site: 'a' as const, actor: 'custodian:bob', serialPrefix: 7 };
    const fpd1Before = store.cas.find((c) => c.id === CA_IDS.deviceIssuing)!.certificate;
    const rollover = await rollRootKey({ ...base, id: 'rootg2', name: { commonName: 'fleetpki Root CA G2' }, years: 40 });
    const x = (der: Buffer) => new X509Certificate(der);
    const [oldRoot, newRoot, nwo, own] = [x(rollover.replaced.certificate), x(rollover.root.certificate), x(rollover.newWithOld), x(rollover.oldWithNew)];
    assert.ok(newRoot.verify(newRoot.publicKey) && newRoot.checkIssued(newRoot), 'NewWithNew is self-signed');
    assert.ok(nwo.verify(oldRoot.publicKey) && nwo.checkIssued(oldRoot) && nwo.publicKey.equals(newRoot.publicKey) && nwo.subject === newRoot.subject, 'NewWithOld: the new key under the old');
    assert.ok(own.verify(newRoot.publicKey) && own.checkIssued(newRoot) && own.publicKey.equals(oldRoot.publicKey) && own.subject === oldRoot.subject, 'OldWithNew: the old key under the new');
    const fpd1 = store.cas.find((c) => c.id === CA_IDS.deviceIssuing)!;
    assert.equal(fpd1.parentId, 'rootg2');
    assert.ok(x(fpd1.certificate).verify(newRoot.publicKey) && x(fpd1.certificate).publicKey.equals(x(fpd1Before).publicKey), 'same key, under the new root');
    assert.deepEqual(await store.previousCaCertificates(CA_IDS.deviceIssuing), [fpd1Before]);
    assert.equal(store.cas.find((c) => c.id === CA_IDS.organisation)!.parentId, CA_IDS.root);
    assert.deepEqual(store.audit.at(-1)!.action, 'ceremony.root-rollover');

    const generations = rootGenerations(store.cas, store.links);
    assert.equal(generations.current.id, 'rootg2');
    assert.deepEqual(generations.updates, [{ oldWithOld: rollover.replaced.certificate, newWithNew: rollover.root.certificate, newWithOld: rollover.newWithOld, oldWithNew: rollover.oldWithNew }]);
    // A link row that does not verify (written by a database role, say) is refused, not served.
    assert.throws(() => rootGenerations(store.cas, [{ ...store.links[0]!, newWithOld: rollover.oldWithNew }]), { code: 'CA_CHAIN_INVALID' });
    assert.throws(() => rootGenerations(store.cas, [{ ...store.links[0]!, oldWithNew: rollover.root.certificate }]), { code: 'CA_CHAIN_INVALID' });
    const cacerts = caCertificatesForClients(fpd1.certificate, rollover.root, generations.updates);
    assert.deepEqual(cacerts, [fpd1.certificate, rollover.root.certificate, rollover.newWithOld, rollover.oldWithNew, rollover.replaced.certificate]);

    // A new CA now goes under the current root; renewing the organisation CA moves it there too.
    assert.equal((await createSubordinateCa({ ...base, siteKeyStore: new SoftwareToken('site-a2'), id: 'fpd2', kind: 'device-issuing', name: { commonName: 'FPD2' }, years: 5 })).parentId, 'rootg2');
    assert.equal((await renewSubordinateCa({ ...base, caId: CA_IDS.organisation, years: 5 })).parentId, 'rootg2');

    // fpd1 revoked: the old root's ARL lists the certificate it signed, the new root's the one it signed.
    store.cas = store.cas.map((c) => (c.id === CA_IDS.deviceIssuing ? { ...c, status: 'revoked' as const, revokedAt: new Date(), revocationReason: 1 } : c));
    const oldArl = await publishAuthorityRevocationList({ ...base, rootId: CA_IDS.root });
    const newArl = await publishAuthorityRevocationList(base);
    assert.deepEqual([oldArl.rootId, newArl.rootId], [CA_IDS.root, 'rootg2']);
    assert.deepEqual(oldArl.entries.map((e) => e.serial), [parseCaCertificate(fpd1Before).serial.toString('hex')]);
    assert.deepEqual(newArl.entries.map((e) => e.serial), [parseCaCertificate(fpd1.certificate).serial.toString('hex')]);

    // The transition ends: the old root is retired, its links are no longer served; the current root is not retired.
    await assert.rejects(retireRoot({ store, site: 'a', actor: 'custodian:bob', rootId: 'rootg2' }), { code: 'CA_ROOT_CURRENT' });
    await retireRoot({ store, site: 'a', actor: 'custodian:bob', rootId: CA_IDS.root });
    assert.deepEqual(rootGenerations(store.cas, store.links), { current: store.cas.find((c) => c.id === 'rootg2'), updates: [] });
    assert.equal(store.audit.at(-1)!.action, 'ceremony.root-retire');
    await assert.rejects(retireRoot({ store, site: 'a', actor: 'custodian:bob', rootId: CA_IDS.root }), { code: 'CA_NOT_ACTIVE' });
  });

  it('refuses an id in use, the old root\'s name, and a new root that would not outlive the old', async () => {
    const { store, root } = await ceremony();
    const base = { store, rootKeyStore: root, site: 'a' as const, actor: 'custodian:bob', serialPrefix: 7 };
    await assert.rejects(rollRootKey({ ...base, id: CA_IDS.deviceIssuing, name: { commonName: 'G2' }, years: 40 }), { code: 'CA_EXISTS' });
    await assert.rejects(rollRootKey({ ...base, id: 'rootg2', name: { commonName: 'fleetpki Root CA', organization: 'fleetpki' }, years: 40 }), { code: 'CA_NAME_INVALID' });
    await assert.rejects(rollRootKey({ ...base, id: 'rootg3', name: { commonName: 'G3' }, years: 5 }), { code: 'CA_VALIDITY_INVALID' });
    assert.equal(store.links.length, 0);
    // Every refusal came before a key was made: the same id works now. A key already under the approved
    // id (planted by a PIN holder who saw the approval) is never adopted as the new root.
    await root.generateSigningKey('rootg4', { cloneable: true });
    await assert.rejects(rollRootKey({ ...base, id: 'rootg4', name: { commonName: 'G4' }, years: 40 }), { code: 'HSM_KEY_EXISTS' });
    const second = await rollRootKey({ ...base, id: 'rootg2', name: { commonName: 'fleetpki Root CA G2' }, years: 40 });
    assert.ok(second.root.keyUri.includes('rootg2'));
    await assert.rejects(rollRootKey({ ...base, id: 'rootg2', name: { commonName: 'again' }, years: 50 }), { code: 'CA_EXISTS' });
  });
});

describe("the root's second copy through its port", () => {
  it('wraps the root under a KEK split into shares; M of them restore it into another token, where it signs for the same public key', async () => {
    const { store, root } = await ceremony();
    const base = { store, rootKeyStore: root, site: 'a' as const, actor: 'custodian:carol' };
    const { backup, shares, uncopyable } = await createRootCustody({ ...base, custodians: 3, threshold: 2, wrap: softwareWrap(root) });
    assert.deepEqual([backup.keys.map((k) => k.rootId), uncopyable, shares.length], [[CA_IDS.root], [], 3]);
    assert.equal(store.audit.at(-1)!.action, 'ceremony.root-custody');
    assert.ok(!JSON.stringify(backup).includes(root.keys.get(CA_IDS.root)!.key.export({ format: 'der', type: 'pkcs8' }).toString('base64')), 'the key is in the backup only wrapped');
    const parsed = parseRootBackup(JSON.stringify(backup), 'root-backup.json');
    await assert.rejects(restoreRootFromShares({ ...base, target: new SoftwareToken('root-copy') }, parsed, shares.slice(0, 1)), { code: 'CUSTODY_SHARES_INSUFFICIENT' });
    const copy = new SoftwareToken('root-copy');
    const report = await restoreRootFromShares({ ...base, target: copy }, parsed, [shares[0]!, shares[2]!]);
    assert.deepEqual(report, { restored: [CA_IDS.root], alreadyPresent: [] });
    const rootCertificate = store.cas.find((c) => c.id === CA_IDS.root)!.certificate;
    assert.ok(copy.keys.get(CA_IDS.root)!.spki.equals(parseCaCertificate(rootCertificate).publicKeySpki), 'the copy holds the root key');
    // The copy signs as the root: an ARL and a root rollover's link certificate.
    const arl = await publishAuthorityRevocationList({ ...base, rootKeyStore: copy });
    assert.equal(arl.rootId, CA_IDS.root);
    const rollover = await rollRootKey({ ...base, rootKeyStore: copy, serialPrefix: 7, id: 'rootg2', name: { commonName: 'fleetpki Root CA G2' }, years: 40 });
    assert.ok(new X509Certificate(rollover.newWithOld).verify(new X509Certificate(rootCertificate).publicKey), "NewWithOld signed by the copy verifies under the root's certificate");
    assert.deepEqual((await restoreRootFromShares({ ...base, target: copy }, parsed, shares)).alreadyPresent, [CA_IDS.root]);
  });

  it("refuses a root that may not leave its token, another KEK's shares, and a backup whose public key is not the root's", async () => {
    const { store, root } = await ceremony();
    const base = { store, rootKeyStore: root, site: 'a' as const, actor: 'custodian:carol' };
    const { backup, shares } = await createRootCustody({ ...base, custodians: 2, threshold: 2, wrap: softwareWrap(root) });
    const other = await createRootCustody({ ...base, custodians: 2, threshold: 2, wrap: softwareWrap(root) });
    await assert.rejects(restoreRootFromShares({ ...base, target: new SoftwareToken('c') }, backup, other.shares), { code: 'CUSTODY_SHARES_MISMATCH' });
    const swapped = { ...backup, keys: backup.keys.map((k) => ({ ...k, publicKeySpki: root.keys.get(CA_IDS.root)!.spki.subarray(0, 10).toString('base64') })) };
    await assert.rejects(restoreRootFromShares({ ...base, target: new SoftwareToken('c') }, swapped, shares), { code: 'CA_KEY_MISMATCH' });
    assert.throws(() => parseRootBackup('{"format":"x"}', 'f.json'), { code: 'ROOT_BACKUP_INVALID' });
    // Shares that claim another threshold than the backup's.
    await assert.rejects(restoreRootFromShares({ ...base, target: new SoftwareToken('c') }, { ...backup, threshold: 1 }, shares), { code: 'CUSTODY_SHARES_MISMATCH' });
    root.keys.get(CA_IDS.root)!.cloneable = false;
    await assert.rejects(createRootCustody({ ...base, custodians: 2, threshold: 2, wrap: softwareWrap(root) }), { code: 'ROOT_NOT_COPYABLE' });
  });

  it('a root key planted under a site custody KEK (a database role can write key_backups) never reaches a site token', async () => {
    const { store, root, site } = await ceremony();
    const custody = await createKeyCustody(store, { custodians: 2, threshold: 2, site: 'a', tokenLabel: 'site-a', actor: 'custodian:alice', wrap: softwareWrap(site) });
    const wrappedRoot = (await softwareWrap(root)(Buffer.alloc(32), { privateKeys: [{ label: CA_IDS.root }], secretKeys: [] })).privateKeys[0]!;
    store.backups.push({ kekId: custody.kekId, keyLabel: 'planted', keyObjectId: wrappedRoot.id, keyClass: 'private', mechanism: 'aes-key-wrap-pad', wrapped: wrappedRoot.wrapped, publicKeySpki: wrappedRoot.publicKeySpki });
    const standby = new SoftwareToken('site-b');
    await assert.rejects(restoreKeysFromShares(store, standby, custody.shares), { code: 'CUSTODY_ROOT_KEY' });
    assert.ok(![...standby.keys.values()].some((k) => k.spki.equals(wrappedRoot.publicKeySpki)), 'the root key is not in the site token');
  });
});
