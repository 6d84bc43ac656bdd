import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseEui64Range } from '@fleetpki/core';
import type { AuditEvent, ManufacturerRange, OrganisationCertificateRecord, Role } from '@fleetpki/store';
import type { Principal } from './api-tokens.js';
import { ClientCertificateAuthenticator, revokeOrganisationCertificateAs } from './client-certificates.js';
import { ManufacturerRegistry } from './manufacturers.js';
import type { ManufacturerStore, ManufacturerTransaction, OrganisationCertificateStore } from './store.js';

/**
 * Manufacturers' ranges and organisation certificates as credentials, over in-memory stores behind
 * their narrow ports (access.test.ts has tokens, people and the two-person rule).
 */
const sha256 = (s: string) => createHash('sha256').update(s).digest();
const principal = (name: string, role: Role, personId = randomUUID()): Principal => ({ credential: `token:${randomUUID()}`, proof: `token:${sha256(name).toString('hex')}`, personId, name, role, manufacturerId: null });

/** Ranges and manufacturers in memory; `conflictOnce` stands for a concurrent registration the exclusion constraint refuses. */
class MemoryManufacturers implements ManufacturerStore {
  manufacturers = new Map<string, { name: string; manifestKey?: Buffer }>([['acme', { name: 'Acme' }], ['other', { name: 'Other' }]]);
  ranges: ManufacturerRange[] = [];
  devices: { eui64: Buffer; manufacturerId: string }[] = [];
  audit: AuditEvent[] = [];

  private tx(): ManufacturerTransaction {
    const overlapping = async (first: Buffer, last: Buffer) => this.ranges.filter((r) => Buffer.compare(r.first, last) <= 0 && Buffer.compare(first, r.last) <= 0);
    return {
      upsertManufacturer: async (id, name) => void this.manufacturers.set(id, { name }),
      setManufacturerManifestKey: async (id, spki) => (this.manufacturers.has(id) ? (this.manufacturers.set(id, { ...this.manufacturers.get(id)!, manifestKey: spki }), true) : false),
      setManufacturerTransportKey: async (id) => this.manufacturers.has(id),
      manufacturerExists: async (id) => this.manufacturers.has(id),
      findOverlappingRanges: overlapping,
      findForeignDeviceInRange: async (id, first, last) => this.devices.find((d) => d.manufacturerId !== id && Buffer.compare(first, d.eui64) <= 0 && Buffer.compare(d.eui64, last) <= 0),
      insertManufacturerRange: async (r) => void this.ranges.push({ ...r, createdAt: new Date() }),
      appendAuditEvents: async (events) => void this.audit.push(...events),
    };
  }
  manufacturerTransaction<T>(work: (tx: ManufacturerTransaction) => Promise<T>): Promise<T> {
    return work(this.tx());
  }
  upsertManufacturer(id: string, name: string) {
    return this.tx().upsertManufacturer(id, name);
  }
  findOverlappingRanges(first: Buffer, last: Buffer) {
    return this.tx().findOverlappingRanges(first, last);
  }
  async listManufacturerRanges(id?: string) {
    return this.ranges.filter((r) => !id || r.manufacturerId === id);
  }
  isRangeConflict(err: unknown) {
    return (err as { code?: string }).code === '23P01';
  }
}

describe('ManufacturerRegistry', () => {
  const admin = principal('admin-1', 'administrator');
  const range = parseEui64Range;

  it('gives a range to one manufacturer only, the same range twice changes nothing, and each change is audited', async () => {
    const store = new MemoryManufacturers();
    const registry = new ManufacturerRegistry(store, 'a');
    assert.equal(await registry.addRange(admin, 'acme', range('00-11-22-00-00-00-00-00', '00-11-22-00-00-00-ff-ff')), 'added');
    assert.equal(await registry.addRange(admin, 'acme', range('00-11-22-00-00-00-00-00', '00-11-22-00-00-00-ff-ff')), 'exists');
    await assert.rejects(registry.addRange(admin, 'other', range('00-11-22-00-00-00-80-00', '00-11-22-00-00-01-00-00')), { code: 'EUI64_RANGE_OVERLAP' });
    await assert.rejects(registry.addRange(admin, 'nobody', range('00-11-23-00-00-00-00-00', '00-11-23-00-00-00-00-ff')), { code: 'MANUFACTURER_UNKNOWN' });
    assert.deepEqual(store.audit.map((e) => [e.action, e.subject, e.actor]), [['manufacturer.range', 'acme', `person:admin-1 via ${admin.credential}`]]);
    const listed = await registry.ranges('acme');
    assert.deepEqual(listed.map((r) => [r.range.first, r.range.last]), [['0011220000000000', '001122000000FFFF']]);
  });

  it('refuses a range holding another manufacturer\'s device, and anyone but an administrator', async () => {
    const store = new MemoryManufacturers();
    store.devices.push({ eui64: Buffer.from('0011220000000005', 'hex'), manufacturerId: 'other' });
    const registry = new ManufacturerRegistry(store, 'a');
    await assert.rejects(registry.addRange(admin, 'acme', range('00-11-22-00-00-00-00-00', '00-11-22-00-00-00-00-ff')), { code: 'EUI64_RANGE_HOLDS_DEVICES' });
    await assert.rejects(registry.add(principal('auditor-1', 'auditor'), 'newco', 'New Co'), { code: 'ROLE_FORBIDDEN' });
    await assert.rejects(registry.setManifestKey(admin, 'nobody', Buffer.alloc(91)), { code: 'MANUFACTURER_UNKNOWN' });
    await registry.add(admin, 'newco', 'New Co');
    assert.deepEqual(store.audit.map((e) => e.action), ['manufacturer.upsert']);
  });
});

/** Organisation certificates in memory. */
class MemoryOrganisationCertificates implements OrganisationCertificateStore {
  certificates = new Map<string, OrganisationCertificateRecord>();
  audit: AuditEvent[] = [];
  behind = new Map<string, string[]>();
  async getOrganisationCertificate(serial: Buffer) {
    return this.certificates.get(serial.toString('hex'));
  }
  async revokeOrganisationCertificate(serial: Buffer, audit: AuditEvent) {
    const c = this.certificates.get(serial.toString('hex'));
    if (!c || c.revokedAt) return false;
    this.certificates.set(serial.toString('hex'), { ...c, revokedAt: new Date() });
    this.audit.push(audit);
    return true;
  }
  async peopleBehind(proof: string) {
    return this.behind.get(proof) ?? [proof];
  }
}

describe('client certificates and their revocation', () => {
  const cert = (serial: string, purpose: OrganisationCertificateRecord['purpose'], extra: Partial<OrganisationCertificateRecord> = {}): OrganisationCertificateRecord => ({ serial: Buffer.from(serial, 'hex'), purpose, subjectDn: `CN=${serial}`, role: null, manufacturerId: null, keyId: Buffer.alloc(8), certificate: Buffer.from(`der-${serial}`), notAfter: new Date(Date.now() + 86_400_000), revokedAt: null, ...extra });

  it('a client certificate stands for its person while it is fleetpki\'s, live and exactly the one presented', async () => {
    const store = new MemoryOrganisationCertificates();
    const personId = randomUUID();
    store.certificates.set('1a01', cert('1a01', 'client', { role: 'auditor', personId, personName: 'erin' }));
    store.certificates.set('1a02', cert('1a02', 'server'));
    const auth = new ClientCertificateAuthenticator(store, 0);
    const who = await auth.authenticate({ raw: Buffer.from('der-1a01'), serialNumber: '1A01' });
    assert.deepEqual([who.name, who.role, who.personId, who.credential], ['erin', 'auditor', personId, 'cert:1a01']);
    await assert.rejects(auth.authenticate({ raw: Buffer.from('other-der'), serialNumber: '1A01' }), { code: 'CLIENT_CERT_INVALID' });
    await assert.rejects(auth.authenticate({ raw: Buffer.from('der-1a02'), serialNumber: '1A02' }), { code: 'CLIENT_CERT_INVALID' });
  });

  it('revoking the CMP or an audit certificate takes two administrators with nobody in common', async () => {
    const store = new MemoryOrganisationCertificates();
    store.certificates.set('0b01', cert('0b01', 'cmp'));
    const [a1, a2] = [principal('admin-1', 'administrator'), principal('admin-2', 'administrator')];
    await assert.rejects(revokeOrganisationCertificateAs(store, 'a', '0b01', [a1]), { code: 'DUAL_CONTROL_REQUIRED' });
    store.behind.set(a2.proof, [a2.proof, a1.proof]);
    await assert.rejects(revokeOrganisationCertificateAs(store, 'a', '0b01', [a1, a2]), { code: 'APPROVAL_SAME_PEOPLE' });
    store.behind.delete(a2.proof);
    assert.deepEqual(await revokeOrganisationCertificateAs(store, 'a', '0B01', [a1, a2]), { purpose: 'cmp' });
    assert.deepEqual(store.audit.map((e) => [e.action, e.subject, e.actor]), [['org-certificate.revoke', '0b01', `person:admin-1 via ${a1.credential} + person:admin-2 via ${a2.credential}`]]);
    await assert.rejects(revokeOrganisationCertificateAs(store, 'a', '0b01', [a1, a2]), { code: 'CERTIFICATE_NOT_FOUND' });
  });
});
