import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CrlPublisher, DualControl, RevocationService, TokenAuthenticator, crlShardOf, issueApiToken, newSerial, openIssuingCa, postgresStatusStore } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore, type Pkcs11KeyStore } from '@fleetpki/hsm';
import { createStatusRuntime } from '@fleetpki/status-responder';
import { getCrl, listCas, type Pool } from '@fleetpki/store';
import { generateDeviceKeys, getProfile, lintDeviceTbs, toPem } from '@fleetpki/x509';
import { signCertificate } from '@fleetpki/ca';
import { createToken, ensureCa, openssl, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { cli } from './support/cli.js';
import { ensureSites } from './support/sites.js';

/**
 * A revoked CA reaches relying parties through the root's ARL: the custodians' ceremony signs it with
 * the offline root, it lists the CA's certificate, and OpenSSL's full-chain CRL check then refuses a
 * device certificate under that CA (and accepted it with the ARL from before the revocation).
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let site: Pkcs11KeyStore;
let custodianFile: string;
// Four characters, like fpd1: the id and name go into every device certificate (its size budget).
const caId = `x${randomBytes(2).toString('hex').slice(0, 3)}`;
let caPem: string;
let firstCaPem: string;
let devicePem: string;
let shardPem: string;

const crlPem = (der: Buffer) => toPem(der, 'X509 CRL');

/** `openssl crl -verify`, which reports on stderr. */
function crlVerify(path: string): string {
  const r = spawnSync('openssl', ['crl', '-in', path, '-CAfile', ca.rootPem, '-noout', '-verify'], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

async function arl(name: string): Promise<{ path: string; der: Buffer }> {
  const out = writeCaFile(ca, `${name}.der`, '');
  const r = await cli(['ceremony', 'arl', '--out', out, '--token-file', custodianFile]);
  assert.equal(r.code, 0, r.stderr);
  const der = (await getCrl(pool, 'root', 0, 'full'))!.der;
  return { path: writeCaFile(ca, `${name}.pem`, crlPem(der)), der };
}

function verifyWithCrls(arlPath: string): string {
  try {
    return openssl(['verify', '-crl_check_all', '-CAfile', ca.rootPem, '-untrusted', caPem, '-CRLfile', arlPath, '-CRLfile', shardPem, devicePem]);
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
  }
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  custodianFile = writeCaFile(ca, 'arl-custodian.token', await createToken(pool, 'custodian', null, `arl-custodian-${caId}`));
  // A device issuing CA of its own (revoking the test deployment's main one would stop the other tests).
  const created = await cli(['ceremony', 'new-ca', '--id', caId, '--name', caId.toUpperCase(), '--out', writeCaFile(ca, `${caId}.pem`, ''), '--token-file', custodianFile]);
  assert.equal(created.code, 0, created.stderr);
  caPem = writeCaFile(ca, `${caId}.pem`, toPem((await listCas(pool)).find((c) => c.id === caId)!.certificate));
  site = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  const issuing = await openIssuingCa((await listCas(pool)).find((c) => c.id === caId)!, site, { crlBaseUrl: config.crlBaseUrl });
  const [key] = generateDeviceKeys(1);
  const serial = newSerial(10);
  const shard = crlShardOf(serial, getProfile('smart-meter').crl!.shards);
  const tbs = issuing.template('smart-meter', 'digitalSignature').assemble({ serial, notBefore: new Date(Math.floor(Date.now() / 1000) * 1000), eui64: randomBytes(8), publicKeySpki: key!.publicKeySpki, crlShard: shard });
  devicePem = writeCaFile(ca, `${caId}-device.pem`, toPem(await signCertificate(issuing, lintDeviceTbs(tbs))));
  await new CrlPublisher(postgresStatusStore(pool), issuing, config.crlBaseUrl).publishAll();
  shardPem = writeCaFile(ca, `${caId}-shard.pem`, crlPem((await getCrl(pool, caId, shard, 'full'))!.der));
});

after(async () => {
  await site?.close();
  await pool?.end();
});

describe("the root's ARL", () => {
  it('before the CA is revoked: the ARL lists nothing of it and the chain with every CRL verifies', async () => {
    const before = await arl('arl-before');
    assert.match(crlVerify(before.path), /verify OK/i);
    assert.doesNotMatch(openssl(['crl', '-in', before.path, '-noout', '-text']), new RegExp(caId, 'i'));
    assert.match(verifyWithCrls(before.path), /: OK/);
  });

  it('renews the CA certificate with the root (same key: its devices still verify under the new one)', async () => {
    const before = openssl(['x509', '-in', caPem, '-noout', '-serial']).trim();
    const renewed = await cli(['ceremony', 'renew-ca', '--ca', caId, '--years', '20', '--token-file', custodianFile]);
    assert.equal(renewed.code, 0, renewed.stderr);
    firstCaPem = caPem;
    caPem = writeCaFile(ca, `${caId}-renewed.pem`, toPem((await listCas(pool)).find((c) => c.id === caId)!.certificate));
    assert.notEqual(openssl(['x509', '-in', caPem, '-noout', '-serial']).trim(), before);
    assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', caPem, devicePem]), /: OK/);
  });

  it('after an approved ca.revoke the ceremony lists the CA in a root-signed ARL, and openssl verify -crl_check_all refuses its device', async () => {
    // Dual control: an officer requests, a second approves, the first executes.
    const [first, second] = await Promise.all([1, 2].map((n) => issueApiToken(pool, { site: 'a', actor: 'test', name: `arl-officer-${n}-${caId}`, role: 'revocation-officer', manufacturerId: null, expiresDays: 1 })));
    const auth = new TokenAuthenticator(pool);
    const dual = new DualControl(pool, 'a', 60);
    const request = await dual.request(await auth.authenticate(`Bearer ${first}`), 'ca.revoke', { caId, reason: 'cACompromise' }, `revoke ${caId}`);
    await dual.approve(await auth.authenticate(`Bearer ${second}`), request.id);
    const { outcome } = await dual.execute(await auth.authenticate(`Bearer ${first}`), request.id, 'ca.revoke', (payload) => new RevocationService(postgresStatusStore(pool), 'a').revokeCa(String(payload.caId), String(payload.reason), 'test', request.id));
    assert.match(outcome.arl, /ceremony arl/, 'the outcome says the ARL is due');

    const after = await arl('arl-after');
    assert.match(crlVerify(after.path), /verify OK/i);
    const text = openssl(['crl', '-in', after.path, '-noout', '-text']);
    for (const pem of [caPem, firstCaPem]) {
      // Both certificates the CA had: the renewed one and the one it replaced.
      const serial = openssl(['x509', '-in', pem, '-noout', '-serial']).trim().split('=')[1]!;
      assert.ok(text.toUpperCase().includes(serial.toUpperCase()), `${serial} listed:\n${text}`);
    }
    assert.match(text, /CA Compromise/);
    assert.match(text, /Only CA Certificates/);
    const verdict = verifyWithCrls(after.path);
    assert.match(verdict, /certificate revoked/);
    assert.doesNotMatch(verdict, /: OK/);
    // The certificate it had before the renewal is refused too.
    const old = spawnSync('openssl', ['verify', '-crl_check_all', '-CAfile', ca.rootPem, '-untrusted', firstCaPem, '-CRLfile', after.path, '-CRLfile', shardPem, devicePem], { encoding: 'utf8' });
    assert.match(`${old.stdout}${old.stderr}`, /certificate revoked/);
  });

  it('is served by the status responder beside the device CRLs', async () => {
    const status = await createStatusRuntime({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0 });
    try {
      const res = await status.app.inject({ method: 'GET', url: '/crl/root/arl.crl' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'application/pkix-crl');
      assert.deepEqual(res.rawPayload, (await getCrl(pool, 'root', 0, 'full'))!.der);
    } finally {
      await status.close();
    }
  });
});
