import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { CA_IDS, openIssuingCa, postgresCustodyStore, runCeremony, verifyCaKeys } from '@fleetpki/ca';
import { openSiteKeyStore, type Pkcs11KeyStore, type SigningKeyStore } from '@fleetpki/hsm';
import { listCas, type CaRecord, type Pool } from '@fleetpki/store';
import { ensureCa, openCustodianRootKeyStore, openssl, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites } from './support/sites.js';

let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let rootStore: SigningKeyStore;
let siteStore: Pkcs11KeyStore;
let chain: CaRecord[];

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  rootStore = await openCustodianRootKeyStore(config);
  siteStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  chain = await listCas(pool);
});

after(async () => {
  await siteStore?.close();
  await rootStore?.close();
  await pool?.end();
});

describe('key ceremony', () => {
  it('creates a root, a device issuing CA and an organisation CA that OpenSSL accepts as a chain', () => {
    // Other test files may add CAs of their own (ceremony new-ca); the ceremony's three are these.
    for (const id of [CA_IDS.root, CA_IDS.deviceIssuing, CA_IDS.organisation]) assert.ok(chain.some((c) => c.id === id), id);
    assert.match(openssl(['verify', '-CAfile', ca.rootPem, ca.issuingPem]), /: OK/);
    const root = openssl(['x509', '-in', ca.rootPem, '-noout', '-text']);
    assert.match(root, /CA:TRUE/);
    assert.match(root, /Certificate Sign, CRL Sign/);
    const issuing = openssl(['x509', '-in', ca.issuingPem, '-noout', '-text']);
    assert.match(issuing, /CA:TRUE, pathlen:0/);
    assert.match(issuing, /Subject: CN\s?=\s?FPD1/);
  });

  it('keeps the root key in its own token and the online keys in the site token', () => {
    const byId = new Map(chain.map((c) => [c.id, c.keyUri]));
    assert.ok(byId.get(CA_IDS.root)!.includes(`token=${config.rootTokenLabel};`));
    assert.ok(byId.get(CA_IDS.deviceIssuing)!.includes(`token=${config.sites.a.hsmTokenLabel};`));
    assert.ok(byId.get(CA_IDS.organisation)!.includes(`token=${config.sites.a.hsmTokenLabel};`));
  });

  it('is recorded in the audit log', async () => {
    const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM audit_events WHERE action = 'ceremony.init'");
    assert.equal(Number(rows[0]!.n), 1);
  });

  it('a second run creates nothing and checks every key', async () => {
    const again = await runCeremony({ store: postgresCustodyStore(pool), rootKeyStore: rootStore, siteKeyStore: siteStore, site: 'a', serialPrefix: 10, actor: 'test' });
    assert.equal(again.created, false);
    assert.deepEqual(
      again.chain.map((c) => c.certificate.toString('hex')),
      chain.map((c) => c.certificate.toString('hex')),
    );
  });

  it('never lets the CA private keys out of the token', async () => {
    await assert.rejects(siteStore.tryReadPrivateValue(CA_IDS.deviceIssuing), /sensitive/);
    await assert.rejects(siteStore.tryReadPrivateValue(CA_IDS.organisation), /sensitive/);
    // The root, like the online CA keys, leaves its token only wrapped under a trusted key (the root's
    // custody ceremony, for its second offline copy); never in clear.
    const root = await rootStore.describeKey(CA_IDS.root);
    assert.deepEqual([root.sensitive, root.alwaysSensitive, root.extractable, root.wrapWithTrusted], [true, true, true, true]);
    for (const id of [CA_IDS.deviceIssuing, CA_IDS.organisation]) {
      const key = await siteStore.describeKey(id);
      assert.deepEqual([key.sensitive, key.alwaysSensitive, key.extractable, key.wrapWithTrusted], [true, true, true, true], id);
    }
  });

  it('refuses to start when a configured key does not match its certificate (CA_KEY_MISMATCH)', async () => {
    const issuing = chain.find((c) => c.id === CA_IDS.deviceIssuing)!;
    // The organisation CA's key, configured for the device issuing CA's certificate.
    const organisation = chain.find((c) => c.id === CA_IDS.organisation)!;
    const swapped: CaRecord = { ...issuing, keyUri: organisation.keyUri };
    await assert.rejects(verifyCaKeys([swapped], [rootStore, siteStore]), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CA_KEY_MISMATCH');
      assert.match(err.message, /fpd1/);
      return true;
    });
    await assert.rejects(openIssuingCa(swapped, siteStore), { code: 'CA_KEY_MISMATCH' });
    // A URI whose label names the right key but whose CKA_ID another is not that key.
    const otherId: CaRecord = { ...issuing, keyUri: issuing.keyUri.replace(/id=[^;]+/, 'id=%00%01%02%03%04%05%06%07') };
    await assert.rejects(openIssuingCa(otherId, siteStore), (err: Error & { code?: string }) => err.code === 'HSM_KEY_NOT_FOUND' && /CKA_ID/.test(err.message));
    // And the real configuration opens.
    const opened = await openIssuingCa(issuing, siteStore);
    assert.equal(opened.record.id, CA_IDS.deviceIssuing);
  });
});
