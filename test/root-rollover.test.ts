import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DeviceKeyService, loadSiteIssuer, openIssuingCa, signCertificate, newSerial } from '@fleetpki/ca';
import { requestRootCaKeyUpdate, verifyRootCaKeyUpdate } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore, readPin, type Pkcs11KeyStore } from '@fleetpki/hsm';
import { custodianPinFiles, openRootKeyStoreAt } from '@fleetpki/sites';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { getCrl, listCas, listMasterKeys, type CaRecord, type Pool } from '@fleetpki/store';
import { generateDeviceKeys, lintDeviceTbs, parseCaCertificate, toPem } from '@fleetpki/x509';
import { createToken, ensureCa, openssl, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { cli } from './support/cli.js';
import { approvedRequest } from './support/dual-control.js';
import { ensureSites } from './support/sites.js';

/**
 * The offline root's second copy (issue 36): the root's custody ceremony and its restore into a second
 * root HSM, which then signs as the root. A root rollover end to end, run with that copy: the custodians' ceremony makes a new root in the offline root's
 * HSM with NewWithOld and OldWithNew, re-certifies the device issuing CA under it; then a meter that
 * holds only the old root in firmware validates a certificate under the new hierarchy through
 * NewWithOld (`openssl verify`, as a meter would: the old root its only anchor), a verifier holding only
 * the new root accepts a certificate of the old chain through OldWithNew, each root signs its own ARL
 * (`openssl crl -verify`), EST's /cacerts list carries all four, and CMP genm id-it-rootCaCert is
 * answered with id-it-rootCaKeyUpdate (our client: OpenSSL 3.0 has none).
 *
 * The rollover changes the test deployment's hierarchy; `after` puts it back as it was (the new root's
 * rows gone, the issuing CAs' certificates restored), so the files after this one see the deployment
 * every other file sees.
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let site: Pkcs11KeyStore;
let runtime: IssuerRuntime | undefined;
let custodianFile: string;
let oldDevicePem: string;
let oldIssuingPem: string;
/** The CAs before the rollover, to put back afterwards. */
let saved: CaRecord[] = [];
const newRootId = `rg${randomBytes(3).toString('hex')}`;
const out = () => join(ca.dir, 'rollover');
const custodyDir = () => join(ca.dir, 'root-custody');
const copyDir = () => join(ca.dir, 'root-copy-hsm');
const file = (name: string) => join(out(), name);

function verify(args: readonly string[]): string {
  try {
    return openssl(['verify', ...args]);
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
  }
}

async function deviceCertificate(name: string): Promise<string> {
  const issuing = await openIssuingCa((await listCas(pool)).find((c) => c.id === 'fpd1')!, site, { crlBaseUrl: config.crlBaseUrl });
  const [key] = generateDeviceKeys(1);
  const tbs = issuing.template('smart-meter', 'digitalSignature').assemble({ serial: newSerial(10), notBefore: new Date(Math.floor(Date.now() / 1000) * 1000), eui64: randomBytes(8), publicKeySpki: key!.publicKeySpki, crlShard: 0 });
  return writeCaFile(ca, `${newRootId}-${name}.pem`, toPem(await signCertificate(issuing, lintDeviceTbs(tbs))));
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  site = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  custodianFile = writeCaFile(ca, `${newRootId}-custodian.token`, await createToken(pool, 'custodian', null, `rollover-custodian-${newRootId}`));
  oldIssuingPem = ca.issuingPem;
  oldDevicePem = await deviceCertificate('before');
  saved = await listCas(pool);
});

after(async () => {
  await runtime?.close();
  await site?.close();
  if (pool) await undoRollover();
  await pool?.end();
});

/** The deployment as it was: every CA the rollover re-certified gets its previous certificate back. */
async function undoRollover(): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const moved = await client.query<{ id: string }>('SELECT id FROM cas WHERE parent_id = $1', [newRootId]);
    for (const { id } of moved.rows) {
      const was = saved.find((c) => c.id === id)!;
      await client.query('UPDATE cas SET certificate = $2, parent_id = $3, not_after = $4 WHERE id = $1', [id, was.certificate, was.parentId, was.notAfter]);
      await client.query('DELETE FROM ca_certificate_history WHERE ca_id = $1 AND certificate = $2', [id, was.certificate]);
    }
    await client.query('DELETE FROM crls WHERE ca_id = $1', [newRootId]);
    await client.query('DELETE FROM crl_numbers WHERE ca_id = $1', [newRootId]);
    await client.query('DELETE FROM root_links WHERE new_root_id = $1', [newRootId]);
    await client.query('DELETE FROM cas WHERE id = $1', [newRootId]);
    // Retirement is final (a trigger, migrations/0049): only the tables' owner, as here, undoes it.
    await client.query('ALTER TABLE cas DISABLE TRIGGER cas_roots_frozen');
    await client.query(`UPDATE cas SET status = 'active' WHERE id = 'root'`);
    await client.query('ALTER TABLE cas ENABLE TRIGGER cas_roots_frozen');
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

describe("the root's second copy", () => {
  it('root-custody wraps the root for offline media under a KEK split among custodians; root-restore puts it into a second root HSM from 2 of 3 shares', async () => {
    // Two custodians: the root leaves its HSM, even wrapped, only with an approved ca.root-custody.
    const unapproved = await cli(['ceremony', 'root-custody', '--custodians', '3', '--threshold', '2', '--out', custodyDir(), '--token-file', custodianFile]);
    assert.notEqual(unapproved.code, 0);
    const approval = await approvedRequest(pool, ca, 'ca.root-custody', 'custodian', {});
    const made = await cli(['ceremony', 'root-custody', '--approval', approval.id, '--custodians', '3', '--threshold', '2', '--out', custodyDir(), '--token-file', approval.tokenFile]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /root root wrapped into .*root-backup\.json; 3 shares, any 2 restore/);
    const backup = readFileSync(join(custodyDir(), 'root-backup.json'), 'utf8');
    assert.equal((await pool.query("SELECT count(*)::int AS n FROM key_backups WHERE key_label = 'root'")).rows[0].n, 0, 'the root is never in the database, not even wrapped');
    assert.ok(JSON.parse(backup).keys[0].wrapped.length > 100);
    // A site's HSM is refused as the place of a copy.
    const refused = await cli(['ceremony', 'root-restore', '--backup', join(custodyDir(), 'root-backup.json'), '--share', join(custodyDir(), 'custodian-1.share'), join(custodyDir(), 'custodian-3.share'), '--hsm-dir', config.sites.b.dir, '--token-file', custodianFile]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /ROOT_COPY_PLACE_INVALID/);
    const one = await cli(['ceremony', 'root-restore', '--backup', join(custodyDir(), 'root-backup.json'), '--share', join(custodyDir(), 'custodian-2.share'), '--hsm-dir', copyDir(), '--token-file', custodianFile]);
    assert.match(one.stderr, /CUSTODY_SHARES_INSUFFICIENT/);
    const restored = await cli(['ceremony', 'root-restore', '--backup', join(custodyDir(), 'root-backup.json'), '--share', join(custodyDir(), 'custodian-1.share'), join(custodyDir(), 'custodian-3.share'), '--hsm-dir', copyDir(), '--token-file', custodianFile]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /restored root;/);
    // Its public key is the root certificate's.
    const copy = await openRootKeyStoreAt(config, readPin(`file:${custodianPinFiles(config).rootPin}`), copyDir());
    try {
      assert.ok((await copy.describeKey('root')).publicKeySpki.equals(parseCaCertificate((await listCas(pool)).find((c) => c.id === 'root')!.certificate).publicKeySpki));
    } finally {
      await copy.close();
    }
  });
});

describe('root rollover with link certificates', () => {
  it('the ceremony, run with the root\'s copy, makes the new root, both links, and re-certifies fpd1 under it (same key)', async () => {
    // Two custodians: one requests ca.root-rollover naming the new root, a second approves.
    const approval = await approvedRequest(pool, ca, 'ca.root-rollover', 'custodian', { id: newRootId, name: `fleetpki Root CA ${newRootId.toUpperCase()}` });
    const unapproved = await approvedRequest(pool, ca, 'master-key.rotate', 'custodian', { role: 'mac' });
    const wrong = await cli(['ceremony', 'root-rollover', '--approval', unapproved.id, '--root-hsm-dir', copyDir(), '--token-file', unapproved.tokenFile]);
    assert.notEqual(wrong.code, 0, 'an approval of another action does not roll the root');
    assert.equal((await listCas(pool)).filter((c) => c.kind === 'root').length, 1);
    const r = await cli(['ceremony', 'root-rollover', '--approval', approval.id, '--out', out(), '--root-hsm-dir', copyDir(), '--token-file', approval.tokenFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`root ${newRootId} .* replaces root`));
    assert.match(r.stdout, /re-certified under it: .*fpd1/);
    const cas = await listCas(pool);
    assert.equal(cas.find((c) => c.id === 'fpd1')!.parentId, newRootId);
    assert.equal(cas.find((c) => c.id === 'org1')!.parentId, 'root', 'the organisation CA stays under the old root');
    const key = (pem: string) => openssl(['x509', '-noout', '-pubkey'], readFileSync(pem));
    assert.equal(key(file('fpd1.pem')), key(oldIssuingPem), 'fpd1 keeps its key');
    // The approval is spent: run again, refused, nothing changed.
    const again = await cli(['ceremony', 'root-rollover', '--approval', approval.id, '--root-hsm-dir', copyDir(), '--token-file', approval.tokenFile]);
    assert.notEqual(again.code, 0);
    assert.equal((await listCas(pool)).filter((c) => c.kind === 'root').length, 2);
  });

  it('a meter holding only the old root validates the new hierarchy through NewWithOld, and not without it', async () => {
    const newDevicePem = await deviceCertificate('after');
    for (const device of [newDevicePem, oldDevicePem]) {
      assert.match(verify(['-CAfile', ca.rootPem, '-untrusted', file('fpd1.pem'), '-untrusted', file('new-with-old.pem'), device]), /: OK/);
      assert.match(verify(['-partial_chain', '-trusted', ca.rootPem, '-untrusted', file('fpd1.pem'), '-untrusted', file('new-with-old.pem'), device]), /: OK/);
      assert.doesNotMatch(verify(['-CAfile', ca.rootPem, '-untrusted', file('fpd1.pem'), device]), /: OK/, 'without the link the old root does not reach the new fpd1');
      // The new root alone, directly.
      assert.match(verify(['-CAfile', file('new-with-new.pem'), '-untrusted', file('fpd1.pem'), device]), /: OK/);
    }
  });

  it('a verifier holding only the new root accepts the old chain through OldWithNew', () => {
    assert.match(verify(['-CAfile', file('new-with-new.pem'), '-untrusted', oldIssuingPem, '-untrusted', file('old-with-new.pem'), oldDevicePem]), /: OK/);
    assert.doesNotMatch(verify(['-CAfile', file('new-with-new.pem'), '-untrusted', oldIssuingPem, oldDevicePem]), /: OK/);
  });

  it("each root signs its own ARL (the new one's key is in the copy only, the old root signs from its own HSM), and each verifies under its root", async () => {
    for (const [root, anchor, place] of [[undefined, file('new-with-new.pem'), ['--root-hsm-dir', copyDir()]], ['root', ca.rootPem, []]] as const) {
      const r = await cli(['ceremony', 'arl', ...(root ? ['--root', root] : []), ...place, '--token-file', custodianFile]);
      assert.equal(r.code, 0, r.stderr);
      const id = root ?? newRootId;
      assert.match(r.stdout, new RegExp(`/${id}/arl.crl`));
      // Without --root, every live root whose key is in the token opened: with the copy, both.
      if (!root) assert.match(r.stdout, /root: ARL number/);
      const path = writeCaFile(ca, `${newRootId}-${id}-arl.pem`, toPem((await getCrl(pool, id, 0, 'full'))!.der, 'X509 CRL'));
      try {
        openssl(['crl', '-in', path, '-CAfile', anchor, '-noout', '-verify']);
      } catch (err) {
        assert.fail(`the ARL of ${id} does not verify under its root: ${String((err as { stderr?: string }).stderr)}`);
      }
    }
  });

  it("root-custody with the copy wraps both roots; in the root's own HSM it names the new root, whose key is only in the copy", async () => {
    const onCopy = await approvedRequest(pool, ca, 'ca.root-custody', 'custodian', {});
    const copied = await cli(['ceremony', 'root-custody', '--approval', onCopy.id, '--custodians', '2', '--threshold', '2', '--out', join(ca.dir, 'root-custody-2'), '--root-hsm-dir', copyDir(), '--token-file', onCopy.tokenFile]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.match(copied.stdout, new RegExp(`root root, ${newRootId} wrapped`));
    const own = await approvedRequest(pool, ca, 'ca.root-custody', 'custodian', {});
    const mine = await cli(['ceremony', 'root-custody', '--approval', own.id, '--custodians', '2', '--threshold', '2', '--out', join(ca.dir, 'root-custody-3'), '--token-file', own.tokenFile]);
    assert.equal(mine.code, 0, mine.stderr);
    assert.match(mine.stdout, new RegExp(`not in this root HSM .*: ${newRootId}`));
  });

  it("`ceremony arl` in the root's own HSM signs the old root's ARL and names the new root, whose key is only in the copy", async () => {
    const r = await cli(['ceremony', 'arl', '--token-file', custodianFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^root: ARL number/m);
    assert.match(r.stdout, new RegExp(`not signed here .*: ${newRootId}`));
  });

  it("EST /cacerts carries NewWithNew, NewWithOld, OldWithNew and OldWithOld beside the issuing CA", async () => {
    const issuer = await loadSiteIssuer(config, pool, site);
    const pems = issuer.caCertificates.map((der) => toPem(der));
    const expected = ['fpd1.pem', 'new-with-new.pem', 'new-with-old.pem', 'old-with-new.pem'].map((name) => readFileSync(file(name), 'utf8'));
    assert.deepEqual(pems, [...expected, readFileSync(ca.rootPem, 'utf8')]);
  });

  it('CMP genm id-it-rootCaCert: the old root gets id-it-rootCaKeyUpdate, which our client checks as a meter would; the new root gets no update', async () => {
    runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 2 });
    await runtime.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}/.well-known/cmp`;
    if (!(await listMasterKeys(pool)).some((m) => m.role === 'mac' && m.status === 'active')) await new DeviceKeyService(pool, runtime.keyStore, 'a').createMasterKey('mac', 'test');
    const admin = await createToken(pool, 'administrator', null, `rollover-admin-${newRootId}`);
    await createToken(pool, 'factory', 'rollover-maker', `rollover-factory-${newRootId}`);
    const reference = `rollover-${newRootId}`;
    const issued = await fetch(url.replace('/.well-known/cmp', '/v1/cmp/secrets'), { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ reference, manufacturer: 'rollover-maker' }) });
    assert.equal(issued.status, 201, await issued.clone().text());
    const secret = Buffer.from(((await issued.json()) as { secret: string }).secret, 'utf8');
    const der = (pem: string) => Buffer.from(readFileSync(pem, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const oldRoot = der(ca.rootPem);
    const update = await requestRootCaKeyUpdate(url, { reference, secret, heldRoot: oldRoot });
    assert.ok(update, 'an update for the old root');
    assert.ok(update.newWithNew.equals(der(file('new-with-new.pem'))));
    assert.ok(update.newWithOld?.equals(der(file('new-with-old.pem'))));
    assert.ok(update.oldWithNew?.equals(der(file('old-with-new.pem'))));
    assert.ok(verifyRootCaKeyUpdate(oldRoot, update).equals(der(file('new-with-new.pem'))), 'the meter accepts the new root');
    assert.equal(await requestRootCaKeyUpdate(url, { reference, secret, heldRoot: der(file('new-with-new.pem')) }), undefined, 'the current root has no update');
    await assert.rejects(requestRootCaKeyUpdate(url, { reference, secret, heldRoot: der(file('fpd1.pem')) }), /badRequest|not one of/);
  });

  it("root-retire ends the transition: /cacerts carries the issuing CA and the new root only, and the old root's ARL is no longer signed", async () => {
    const refused = await cli(['ceremony', 'root-retire', '--root', newRootId, '--token-file', custodianFile]);
    assert.match(refused.stderr, /CA_ROOT_CURRENT/);
    // The organisation CA is still under the old root: refused until it has moved.
    const inUse = await cli(['ceremony', 'root-retire', '--root', 'root', '--token-file', custodianFile]);
    assert.match(inUse.stderr, /CA_ROOT_IN_USE.*org1/);
    const moved = await cli(['ceremony', 'renew-ca', '--ca', 'org1', '--root-hsm-dir', copyDir(), '--token-file', custodianFile]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal((await listCas(pool)).find((c) => c.id === 'org1')!.parentId, newRootId);
    const r = await cli(['ceremony', 'root-retire', '--root', 'root', '--token-file', custodianFile]);
    assert.equal(r.code, 0, r.stderr);
    // Final: the database refuses to make it active again, whoever asks through the operator role's grants.
    const again = await cli(['ceremony', 'root-retire', '--root', 'root', '--token-file', custodianFile]);
    assert.match(again.stderr, /CA_NOT_ACTIVE/);
    const issuer = await loadSiteIssuer(config, pool, site);
    assert.deepEqual(issuer.caCertificates.map((der) => toPem(der)), ['fpd1.pem', 'new-with-new.pem'].map((name) => readFileSync(file(name), 'utf8')));
    assert.deepEqual(issuer.rootUpdates, []);
    const arl = await cli(['ceremony', 'arl', '--root-hsm-dir', copyDir(), '--token-file', custodianFile]);
    assert.equal(arl.code, 0, arl.stderr);
    assert.doesNotMatch(arl.stdout, /^root: ARL/m);
    assert.match(arl.stdout, new RegExp(`^${newRootId}: ARL number`, 'm'));
  });
});

