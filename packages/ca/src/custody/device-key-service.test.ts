import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FleetError } from '@fleetpki/core';
import type { DeviceKeyHsm, MasterKeyStore } from '@fleetpki/hsm';
import type { AuditEvent, DeviceKeyRoleName, MasterKeyRecord } from '@fleetpki/store';
import { DeviceKeyService, hasActiveMasterKey } from './device-key-service.js';
import type { DeviceKeyStore } from './store.js';

/**
 * DeviceKeyService against an in-memory DeviceKeyStore and a stand-in HSM: master key versions and
 * their audit rows, the refusals before anything is agreed with the HSM, the bundle's audit row, and
 * the cap on bundles open at once. The HSM's diversification is covered by test/device-keys.test.ts.
 */
class MemoryDeviceKeyStore implements DeviceKeyStore {
  masters: MasterKeyRecord[] = [];
  transportKeys = new Map<string, Buffer | null>();
  /** EUI-64s (hex) each manufacturer owns. */
  owned = new Map<string, Set<string>>();
  checks: { bundle: string; eui64: Buffer; role: DeviceKeyRoleName; version: number }[] = [];
  audit: AuditEvent[] = [];

  async listMasterKeys(): Promise<MasterKeyRecord[]> {
    return this.masters;
  }
  async recordMasterKey(role: DeviceKeyRoleName, version: number, label: string, objectId: Buffer, event: AuditEvent): Promise<void> {
    this.masters = this.masters.map((m) => (m.role === role ? { ...m, status: 'retired' as const } : m));
    this.masters.push({ role, version, keyLabel: label, keyObjectId: objectId, status: 'active' });
    this.audit.push(event);
  }
  async manufacturerTransportKey(manufacturerId: string): Promise<Buffer | null | undefined> {
    return this.transportKeys.get(manufacturerId);
  }
  async saveDeviceKeyChecks(bundle: string, checks: readonly { eui64: Buffer; role: DeviceKeyRoleName; version: number; kcv: Buffer }[]): Promise<void> {
    for (const c of checks) this.checks.push({ bundle, eui64: c.eui64, role: c.role, version: c.version });
  }
  async assertDevicesOwned(manufacturerId: string, eui64s: readonly Buffer[]): Promise<void> {
    const bad = eui64s.find((e) => !this.owned.get(manufacturerId)?.has(e.toString('hex')));
    if (bad) throw new FleetError('EUI64_OUTSIDE_RANGE', `EUI-64 ${bad.toString('hex')} is not ${manufacturerId}'s`, { httpStatus: 403 });
  }
  async appendAudit(event: AuditEvent): Promise<void> {
    this.audit.push(event);
  }
}

/** A stand-in HSM: counts the transports it agreed and the sessions still open. */
class StandInHsm implements MasterKeyStore, DeviceKeyHsm {
  readonly tokenLabel = 'site-a';
  transports = 0;
  open = 0;
  async generateMasterKey(): Promise<{ id: Buffer }> {
    return { id: randomBytes(8) };
  }
  async hasSecretKey(): Promise<boolean> {
    return true;
  }
  async masterCheckValue(): Promise<Buffer> {
    return Buffer.alloc(3);
  }
  async openDeviceKeyTransport() {
    this.transports++;
    this.open++;
    return {
      ephemeralPoint: Buffer.alloc(65, 4),
      wrapDeviceKeys: async (items: readonly { masterLabel: string; data: Buffer }[]) => items.map(() => ({ wrapped: randomBytes(24), kcv: randomBytes(3) })),
      close: async () => {
        this.open--;
      },
    };
  }
  async deviceMac(): Promise<Buffer> {
    return Buffer.alloc(16);
  }
}

const factorySpki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
const device = (n: number) => Buffer.from(`001bc500000000${n.toString(16).padStart(2, '0')}`, 'hex');

function setUp() {
  const store = new MemoryDeviceKeyStore();
  const hsm = new StandInHsm();
  store.transportKeys.set('acme', factorySpki);
  store.transportKeys.set('bare', null);
  store.owned.set('acme', new Set([device(1), device(2)].map((d) => d.toString('hex'))));
  return { store, hsm, service: new DeviceKeyService(store, hsm, 'a', { concurrency: 1, maxMs: 60_000 }) };
}

describe('device keys through their port', () => {
  it('master keys get the next version per role, each with its audit row; the earlier one retires', async () => {
    const { store, service } = setUp();
    assert.equal(await hasActiveMasterKey(store, 'mac'), false);
    assert.deepEqual(await service.createMasterKey('mac', 'custodian:alice'), { role: 'mac', version: 1, label: 'dk-mac-v1' });
    assert.deepEqual(await service.createMasterKey('mac', 'custodian:bob'), { role: 'mac', version: 2, label: 'dk-mac-v2' });
    assert.deepEqual(await service.createMasterKey('enc', 'custodian:bob'), { role: 'enc', version: 1, label: 'dk-enc-v1' });
    assert.equal(await hasActiveMasterKey(store, 'mac'), true);
    assert.deepEqual(store.masters.map((m) => [m.keyLabel, m.status]), [['dk-mac-v1', 'retired'], ['dk-mac-v2', 'active'], ['dk-enc-v1', 'active']]);
    assert.deepEqual(store.audit.map((e) => [e.action, e.subject, e.actor]), [['device-key.master.create', 'dk-mac-v1', 'custodian:alice'], ['device-key.master.create', 'dk-mac-v2', 'custodian:bob'], ['device-key.master.create', 'dk-enc-v1', 'custodian:bob']]);
    await assert.rejects(service.createMasterKey('sign' as never, 'x'), { code: 'DEVICE_KEY_ROLE_INVALID' });
  });

  it('refuses before the HSM agrees a transport key: unknown manufacturer, no transport key, no master key, a device not its own', async () => {
    const { store, hsm, service } = setUp();
    const request = { manufacturerId: 'acme', roles: ['mac' as const], actor: 'admin:carol', eui64s: [device(1)] };
    await assert.rejects(service.issueBundle({ ...request, manufacturerId: 'nobody' }), { code: 'MANUFACTURER_NOT_FOUND' });
    await assert.rejects(service.issueBundle({ ...request, manufacturerId: 'bare' }), { code: 'TRANSPORT_KEY_MISSING' });
    await assert.rejects(service.issueBundle(request), { code: 'DEVICE_MASTER_KEY_MISSING' });
    await service.createMasterKey('mac', 'custodian:alice');
    await assert.rejects(service.issueBundle({ ...request, eui64s: [device(1), device(9)] }), { code: 'EUI64_OUTSIDE_RANGE' });
    assert.equal(hsm.transports, 0);
    assert.deepEqual(store.audit.map((e) => e.action), ['device-key.master.create']);
  });

  it('a bundle wraps one key per device and role, stores their check values and is audited once, when it closes', async () => {
    const { store, hsm, service } = setUp();
    await service.createMasterKey('mac', 'custodian:alice');
    await service.createMasterKey('enc', 'custodian:alice');
    const bundle = await service.issueBundle({ manufacturerId: 'acme', roles: ['mac', 'enc'], context: 'batch-1', actor: 'admin:carol', eui64s: [device(1), device(2)] });
    assert.equal(bundle.keys.length, 4);
    assert.equal(bundle.header.manufacturer, 'acme');
    assert.equal(store.checks.length, 4);
    assert.equal(hsm.open, 0, 'the HSM session is closed');
    assert.deepEqual(store.audit.at(-1), { site: 'a', actor: 'admin:carol', action: 'device-key.bundle', subject: 'batch-1', details: { manufacturer: 'acme', devices: 2, roles: ['mac', 'enc'] } });
  });

  it('streamed bundles are capped (DEVICE_KEY_BUNDLES_BUSY) until one closes; a closed bundle wraps nothing more', async () => {
    const { service } = setUp();
    await service.createMasterKey('mac', 'custodian:alice');
    const open = await service.openBundle({ manufacturerId: 'acme', roles: ['mac'], actor: 'factory:acme' });
    await assert.rejects(service.openBundle({ manufacturerId: 'acme', roles: ['mac'], actor: 'factory:acme' }), { code: 'DEVICE_KEY_BUNDLES_BUSY' });
    assert.equal((await open.wrap([device(2)])).length, 1);
    await open.close();
    await assert.rejects(open.wrap([device(1)]), { code: 'DEVICE_KEY_BUNDLE_EXPIRED' });
    const next = await service.openBundle({ manufacturerId: 'acme', roles: ['mac'], actor: 'factory:acme' });
    await next.close();
  });
});
