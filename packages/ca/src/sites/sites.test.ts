import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import type { KeyStore } from '@fleetpki/hsm';
import type { AuditEvent, CaRecord, Pool, SiteStateRecord } from '@fleetpki/store';
import { assembleSignedCertificate, buildCaTbs } from '@fleetpki/x509';
import { loadSiteIssuer, type SiteIssuer } from '../issuance/site-issuer.js';
import { CaStatusGuard, SiteGuard } from './site-guard.js';
import { SiteLease, type LeaseObservation } from './site-lease.js';
import { openRoleSiteRuntime, openSiteRuntime } from './site-runtime.js';
import { readSiteState, recordSiteOperation } from './site-state.js';
import type { SiteAuditStore, SiteGuardStore, SiteIssuerStore } from './store.js';

/**
 * The sites capability against in-memory ports: the guards, loading the site's issuer, the site's
 * state and its audit row, and openSiteRuntime's order (opened in order, closed in reverse, and on a
 * failure part way only what was opened). etcd, PostgreSQL and the HSM: test/sites.test.ts and the
 * services' integration tests.
 */
const config = loadConfig({ FLEETPKI_STATE_DIR: mkdtempSync(join(tmpdir(), 'fleetpki-sites-')) });

class MemorySiteStore implements SiteGuardStore, SiteIssuerStore, SiteAuditStore {
  inRecovery = false;
  standby = { required: true, connected: true, replyAgeMs: 0 as number | null };
  cas: CaRecord[] = [];
  states: SiteStateRecord[] = [{ site: 'a', role: 'active', epoch: 4, serialPrefix: 17 }];
  audit: AuditEvent[] = [];
  async isInRecovery() {
    return this.inRecovery;
  }
  async syncStandbyState() {
    return this.standby;
  }
  async listCas() {
    return this.cas;
  }
  async rootLinks() {
    return [];
  }
  async readSiteStates() {
    return this.states;
  }
  async appendAuditLocally(event: AuditEvent) {
    this.audit.push(event);
  }
}

/** A device issuing CA and its root, with the issuing key in a software "token". */
function hierarchy(): { cas: CaRecord[]; keyStore: KeyStore } {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  const tbs = buildCaTbs({ subject: { commonName: 'FPD1' }, serial: Buffer.from('0a01', 'hex'), notBefore: new Date('2026-01-01Z'), notAfter: new Date('2050-01-01Z'), publicKeySpki: spki, pathLength: 0 });
  const certificate = assembleSignedCertificate(tbs.der, sign('sha256', tbs.der, keys.privateKey));
  const record = (id: string, kind: CaRecord['kind']): CaRecord => ({ id, kind, parentId: kind === 'root' ? null : 'root', subjectDn: 'CN=FPD1', keyUri: `pkcs11:token=software;object=${id}`, keyId: tbs.keyId, certificate, notAfter: new Date('2050-01-01Z'), status: 'active' });
  const keyStore = { tokenLabel: 'software', getSigner: async () => ({ algorithm: 'ecdsa-p256-sha256' as const, publicKeySpki: spki, sign: async (d: Uint8Array) => sign('sha256', d, keys.privateKey) }), close: async () => undefined } as unknown as KeyStore;
  return { cas: [record('root', 'root'), record('fpd1', 'device-issuing')], keyStore };
}

describe('the site guard and the CA status guard through their ports', () => {
  it('a standby refuses writes naming the active site; a primary whose synchronous standby is gone is STANDBY_UNAVAILABLE', async () => {
    const store = new MemorySiteStore();
    const guard = new SiteGuard(store, config);
    await guard.assertWritable();
    store.standby = { required: true, connected: false, replyAgeMs: null };
    // The guard asks at most twice a second: a fresh one sees the change now.
    const blocked: unknown[] = [];
    const fresh = new SiteGuard(store, config);
    fresh.onWritesBlocked = (b) => blocked.push(b);
    await assert.rejects(fresh.assertWritable(), { code: 'STANDBY_UNAVAILABLE' });
    assert.equal(blocked.length, 1, 'the service is told once');
    store.inRecovery = true;
    const standby = new SiteGuard(store, config);
    await assert.rejects(standby.assertWritable(), { code: 'SITE_STANDBY' });
    assert.equal(await standby.canAct(), false);
  });

  it('a CA not active issues nothing', async () => {
    const store = new MemorySiteStore();
    store.cas = hierarchy().cas;
    await new CaStatusGuard(store).assertActive('fpd1');
    await assert.rejects(new CaStatusGuard(store).assertActive('fpd9'), { code: 'CA_NOT_ACTIVE' });
  });
});

describe("the site's issuer and state", () => {
  it("loads the device issuing CA with the site's serial prefix; before the ceremony, CA_NOT_INITIALISED", async () => {
    const store = new MemorySiteStore();
    const { cas, keyStore } = hierarchy();
    await assert.rejects(loadSiteIssuer(config, store, keyStore), { code: 'CA_NOT_INITIALISED' });
    store.cas = cas;
    const issuer = await loadSiteIssuer(config, store, keyStore);
    assert.deepEqual([issuer.ca.record.id, issuer.root.id, issuer.serialPrefix], ['fpd1', 'root', 17]);
    store.states = [];
    await assert.rejects(loadSiteIssuer(config, store, keyStore), { code: 'SITE_STATE_MISSING' });
  });

  it("reads the site's row and records a site operation in the site's own audit log", async () => {
    const store = new MemorySiteStore();
    assert.equal((await readSiteState(store, 'a'))?.epoch, 4);
    assert.equal(await readSiteState(store, 'b'), undefined);
    await recordSiteOperation(store, 'b', 'person:ann + person:bob', 'site.failover', { epoch: 5, forced: true });
    assert.deepEqual(store.audit, [{ site: 'b', actor: 'person:ann + person:bob', action: 'site.failover', subject: 'b', details: { epoch: 5, forced: true } }]);
  });
});

describe('openSiteRuntime', () => {
  const observation: LeaseObservation = { state: { leader: { site: 'a', lease: '1', ttlSeconds: 5 }, candidates: [], unprotected: undefined, vouchFloor: undefined, handedOver: [], switchover: undefined, writesBlocked: {} }, inRecovery: false, epoch: 4, activeHere: true, streaming: null, detail: '' };

  /** Records what is opened and closed, in order; `failAt` makes that step throw. */
  function parts(failAt?: string) {
    const log: string[] = [];
    const step = (name: string) => {
      if (name === failAt) throw new Error(`${name} failed`);
      log.push(`open ${name}`);
    };
    const { cas, keyStore } = hierarchy();
    const store = new MemorySiteStore();
    store.cas = cas;
    return {
      log,
      seams: {
        openPool: async (_spec: unknown, purpose: string | undefined) => {
          step(`pool ${purpose ?? 'main'}`);
          return { query: () => Promise.reject(new Error('not here')), end: async () => void log.push(`close pool ${purpose ?? 'main'}`) } as unknown as Pool;
        },
        openLease: () => {
          step('lease');
          const lease = new SiteLease(config, 'a', 'postgres://unused', { observer: { observe: async () => observation, reset() {}, close() {} } });
          const close = lease.close.bind(lease);
          lease.close = async () => {
            log.push('close lease');
            await close();
          };
          return lease;
        },
        openKeyStore: async () => {
          step('key store');
          return { ...keyStore, close: async () => void log.push('close key store') } as KeyStore;
        },
        loadIssuer: async (_pool: Pool, ks: KeyStore): Promise<SiteIssuer> => {
          step('issuer');
          return loadSiteIssuer(config, store, ks);
        },
      },
    };
  }
  const spec = { service: 'worker' as const, pool: { max: 2 }, pools: { reserved: { max: 1 } }, guardPool: 'reserved' as const, hsm: { sessions: 1 } };

  it('opens pools, lease, key store and issuer in order and closes them in reverse', async () => {
    const { log, seams } = parts();
    const runtime = await openSiteRuntime(config, spec, seams);
    assert.equal(runtime.issuer.ca.record.id, 'fpd1');
    assert.equal(runtime.lease.state().issuing, true);
    assert.ok(runtime.pools.reserved);
    await runtime.close();
    assert.deepEqual(log, ['open pool main', 'open pool reserved', 'open lease', 'open key store', 'open issuer', 'close key store', 'close lease', 'close pool reserved', 'close pool main']);
  });

  for (const failAt of ['pool reserved', 'key store', 'issuer']) {
    it(`a failure at "${failAt}" closes what was opened, in reverse, and is rethrown`, async () => {
      const { log, seams } = parts(failAt);
      await assert.rejects(openSiteRuntime(config, spec, seams), { message: `${failAt} failed` });
      const opened = log.filter((l) => l.startsWith('open ')).map((l) => l.slice(5));
      const closed = log.filter((l) => l.startsWith('close ')).map((l) => l.slice(6));
      assert.deepEqual(closed, opened.filter((o) => o !== 'issuer').reverse());
    });
  }

  it('a role site (reconcilers) opens its pool, the lease and the guard, and no HSM session', async () => {
    const { log, seams } = parts();
    const runtime = await openRoleSiteRuntime(config, { service: 'issuer', pool: { max: 2 }, purpose: 'daemons' }, seams);
    assert.equal(runtime.lease.state().issuing, true);
    assert.ok(!('keyStore' in runtime) && !('issuer' in runtime));
    await runtime.close();
    assert.deepEqual(log, ['open pool daemons', 'open lease', 'close lease', 'close pool daemons']);
  });
});
