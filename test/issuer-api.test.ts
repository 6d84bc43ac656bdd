import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { setManufacturerManifestKey, type Pool } from '@fleetpki/store';
import { signRawKeyStatement, syntheticEui64 } from '@fleetpki/manifest';
import { buildMinimalCsr, generateDeviceKeys, getProfile, P256_SPKI_PREFIX } from '@fleetpki/x509';
import { createToken, ensureCa, openssl, opensslCsr, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites } from './support/sites.js';

let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let app: IssuerRuntime['app'];
let factoryToken: string;
let otherFactoryToken: string;
let auditorToken: string;
let manufacturerKey: KeyObject;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  factoryToken = await createToken(pool, 'factory', 'test-maker');
  // Raw public keys come with a statement signed by the manufacturer's registered key.
  const manifestKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  manufacturerKey = manifestKey.privateKey;
  await setManufacturerManifestKey(pool, 'test-maker', manifestKey.publicKey.export({ format: 'der', type: 'spki' }));
  otherFactoryToken = await createToken(pool, 'factory', 'other-maker');
  auditorToken = await createToken(pool, 'auditor', null);
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 2, poolSize: 4 });
  app = runtime.app;
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

/** A fresh device id of test-maker's block per call: the database outlives test runs. */
function newEui(): string {
  return syntheticEui64('test-maker');
}

function enrol(body: unknown, token: string | null = factoryToken, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/v1/enrolments',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function rowCounts(): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ devices: string; intents: string; certificates: string }>(
    'SELECT (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM issuance_intents) AS intents, (SELECT count(*) FROM certificates) AS certificates',
  );
  return { devices: Number(rows[0]!.devices), intents: Number(rows[0]!.intents), certificates: Number(rows[0]!.certificates) };
}

function writeTemp(name: string, content: string): string {
  const path = join(ca.dir, name);
  writeFileSync(path, content);
  return path;
}

describe('online enrolment', () => {
  for (const keyRole of ['digitalSignature', 'keyAgreement'] as const) {
    it(`issues a ${keyRole} certificate from a CSR that OpenSSL verifies and shows as the profile says`, async () => {
      const [key] = generateDeviceKeys(1);
      const eui64 = newEui();
      const res = await enrol({ eui64, keyRole, csr: key!.csr.toString('base64') });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json<{ certificate: string; serial: string; eui64: string; notAfter: string }>();
      assert.equal(body.eui64, eui64);
      assert.equal(body.notAfter, '9999-12-31T23:59:59.000Z');
      const certPath = writeTemp(`${eui64}-${keyRole}.pem`, body.certificate);
      assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, certPath]), /: OK/);

      const text = openssl(['x509', '-in', certPath, '-noout', '-text']);
      assert.match(text, /Subject:\s*\n/, 'subject is empty');
      assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
      assert.match(text, /Not After : Dec 31 23:59:59 9999 GMT/);
      assert.match(text, /ASN1 OID: prime256v1/);
      assert.match(text, /X509v3 Subject Alternative Name: critical\n\s*othername: (1\.3\.6\.1\.5\.5\.7\.8\.4|Hardware Module Name)/);
      // hardwareModuleName = SEQUENCE { hwType OID, hwSerialNum OCTET STRING (the EUI-64) }: find the 8 bytes.
      const der = readDer(certPath);
      assert.ok(der.includes(Buffer.concat([Buffer.from([0x04, 0x08]), Buffer.from(eui64, 'hex')])), 'the EUI-64 is the hwSerialNum');
      const usage = /X509v3 Key Usage: critical\n\s*(.+)\n/.exec(text);
      assert.ok(usage, 'keyUsage present and critical');
      assert.equal(usage[1]!.trim(), keyRole === 'digitalSignature' ? 'Digital Signature' : 'Key Agreement');
      assert.equal(BigInt(`0x${body.serial}`) >> 64n, 10n, "serial = site A's prefix byte (10) + 64 random bits");
    });
  }

  it("issues from a raw public key (SPKI) the manufacturer's key vouches for, and returns DER when asked", async () => {
    const [key] = generateDeviceKeys(1);
    const eui64 = newEui();
    const publicKeySignature = signRawKeyStatement({ manufacturerId: 'test-maker', eui64, keyRole: 'digitalSignature', spki: key!.publicKeySpki }, manufacturerKey);
    const res = await enrol({ eui64, keyRole: 'digitalSignature', publicKey: key!.publicKeySpki.toString('base64'), publicKeySignature, format: 'der' });
    assert.equal(res.statusCode, 201, res.body);
    const der = Buffer.from(res.json<{ certificate: string }>().certificate, 'base64');
    const path = writeTemp('raw.der', '');
    writeFileSync(path, der);
    const pem = openssl(['x509', '-inform', 'DER', '-in', path]);
    assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, writeTemp('raw.pem', pem)]), /: OK/);
  });

  it('keeps each profile under its DER size budget, the compact one well under 350 bytes with its signature', async () => {
    for (const profile of ['smart-meter', 'smart-meter-compact']) {
      const [key] = generateDeviceKeys(1);
      const res = await enrol({ eui64: newEui(), keyRole: 'keyAgreement', profile, csr: key!.csr.toString('base64'), format: 'der' });
      assert.equal(res.statusCode, 201, res.body);
      const size = Buffer.from(res.json<{ certificate: string }>().certificate, 'base64').length;
      console.log(`# profile ${profile}: ${size} bytes DER (budget ${getProfile(profile).derBudget})`);
      assert.ok(size <= getProfile(profile).derBudget, `${profile}: ${size} > ${getProfile(profile).derBudget}`);
    }
  });

  it('finds the certificate by serial and by device, only for its own manufacturer', async () => {
    const [key] = generateDeviceKeys(1);
    const eui64 = newEui();
    const issued = (await enrol({ eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') })).json<{ serial: string; certificate: string }>();
    const bySerial = await app.inject({ url: `/v1/certificates/${issued.serial}`, headers: { authorization: `Bearer ${factoryToken}` } });
    assert.equal(bySerial.statusCode, 200);
    assert.equal(bySerial.json<{ certificate: string }>().certificate, issued.certificate);
    const byDevice = await app.inject({ url: `/v1/devices/${eui64}/certificates`, headers: { authorization: `Bearer ${auditorToken}` } });
    assert.equal(byDevice.json<{ certificates: unknown[] }>().certificates.length, 1);
    const foreign = await app.inject({ url: `/v1/certificates/${issued.serial}`, headers: { authorization: `Bearer ${otherFactoryToken}` } });
    assert.equal(foreign.statusCode, 404);
    assert.equal(foreign.json<{ code: string }>().code, 'CERTIFICATE_NOT_FOUND');
  });

  it('serves the chain, the OpenAPI document, health and metrics', async () => {
    const chain = await app.inject({ url: '/v1/ca/chain' });
    assert.equal(chain.statusCode, 200);
    assert.equal((chain.body.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    const openapi = (await app.inject({ url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    for (const path of ['/v1/enrolments', '/v1/certificates/{serial}', '/v1/devices/{eui64}/certificates', '/v1/ca/chain']) assert.ok(openapi.paths[path], path);
    assert.equal((await app.inject({ url: '/docs/' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
    assert.match((await app.inject({ url: '/metrics' })).body, /fleetpki_certificates_issued_total/);
  });
});

function readDer(pemPath: string): Buffer {
  const pem = openssl(['x509', '-in', pemPath]);
  return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

describe('bad input: a 4xx with a stable code, and nothing written', () => {
  const [good] = generateDeviceKeys(1);
  const goodCsr = good!.csr.toString('base64');
  const badSignatureCsr = (() => {
    const csr = Buffer.from(good!.csr);
    csr[csr.length - 5] = csr[csr.length - 5]! ^ 0x01;
    return csr.toString('base64');
  })();
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  // Signed by a different key than the one it carries: proof of possession fails.
  const wrongSignerCsr = buildMinimalCsr(good!.publicKeySpki, (info) => sign('sha256', info, otherKey)).toString('base64');
  const offCurve = Buffer.concat([P256_SPKI_PREFIX, Buffer.from([0x04]), Buffer.alloc(32, 1), Buffer.alloc(32, 2)]).toString('base64');

  const cases: { name: string; body: () => unknown; status: number; code: string; token?: string | null }[] = [
    { name: 'malformed PEM', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: '-----BEGIN CERTIFICATE REQUEST-----\nnot base64!!\n-----END CERTIFICATE REQUEST-----' }), status: 400, code: 'CSR_MALFORMED' },
    { name: 'truncated DER', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: good!.csr.subarray(0, 60).toString('base64') }), status: 400, code: 'CSR_MALFORMED' },
    { name: 'CSR with a corrupted signature', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: badSignatureCsr }), status: 400, code: 'CSR_SIGNATURE_INVALID' },
    { name: 'CSR signed by another key', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: wrongSignerCsr }), status: 400, code: 'CSR_SIGNATURE_INVALID' },
    { name: 'RSA CSR', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: opensslCsr(['-newkey', 'rsa:2048']) }), status: 400, code: 'KEY_TYPE_UNSUPPORTED' },
    { name: 'Ed25519 CSR', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: opensslCsr(['-newkey', 'ed25519']) }), status: 400, code: 'KEY_TYPE_UNSUPPORTED' },
    { name: 'P-384 CSR', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']) }), status: 400, code: 'KEY_TYPE_UNSUPPORTED' },
    { name: 'point not on the curve', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', publicKey: offCurve }), status: 400, code: 'PUBLIC_KEY_INVALID' },
    { name: 'bad EUI-64', body: () => ({ eui64: '00-11-22-33-44-55-66', keyRole: 'digitalSignature', csr: goodCsr }), status: 400, code: 'EUI64_INVALID' },
    { name: 'unknown key role', body: () => ({ eui64: newEui(), keyRole: 'keyEncipherment', csr: goodCsr }), status: 400, code: 'KEY_ROLE_UNKNOWN' },
    { name: 'unknown profile', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', profile: 'tls-server', csr: goodCsr }), status: 400, code: 'PROFILE_UNKNOWN' },
    { name: 'both CSR and public key', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: goodCsr, publicKey: good!.publicKeySpki.toString('base64') }), status: 400, code: 'KEY_SOURCE_INVALID' },
    { name: 'unknown field', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: goodCsr, subject: 'CN=x' }), status: 400, code: 'REQUEST_INVALID' },
    { name: 'body that is not JSON', body: () => '{"eui64": ', status: 400, code: 'BODY_MALFORMED' },
    { name: 'oversized body', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: 'A'.repeat(70_000) }), status: 413, code: 'BODY_TOO_LARGE' },
    { name: 'missing token', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: goodCsr }), status: 401, code: 'AUTH_REQUIRED', token: null },
    { name: 'wrong token', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: goodCsr }), status: 401, code: 'AUTH_INVALID', token: `fpk_${randomBytes(32).toString('base64url')}` },
    { name: 'token of a role that cannot enrol', body: () => ({ eui64: newEui(), keyRole: 'digitalSignature', csr: goodCsr }), status: 403, code: 'ROLE_FORBIDDEN', token: 'auditor' },
  ];

  for (const c of cases) {
    it(`${c.name} -> ${c.status} ${c.code}`, async () => {
      const before = await rowCounts();
      const token = c.token === 'auditor' ? auditorToken : c.token === undefined ? factoryToken : c.token;
      const res = await enrol(c.body(), token);
      assert.equal(res.statusCode, c.status, res.body);
      const error = res.json<{ code: string; message: string }>();
      assert.equal(error.code, c.code, error.message);
      assert.ok(error.message.length > 10, 'the message says what is wrong');
      assert.deepEqual(await rowCounts(), before, 'nothing written');
    });
  }

  it('a second certificate for the same (device, role) -> 409 CERTIFICATE_EXISTS, the first one stays', async () => {
    const eui64 = newEui();
    const [k1, k2] = generateDeviceKeys(2);
    const first = await enrol({ eui64, keyRole: 'digitalSignature', csr: k1!.csr.toString('base64') });
    assert.equal(first.statusCode, 201);
    const before = await rowCounts();
    const second = await enrol({ eui64, keyRole: 'digitalSignature', csr: k2!.csr.toString('base64') });
    assert.equal(second.statusCode, 409, second.body);
    assert.equal(second.json<{ code: string }>().code, 'CERTIFICATE_EXISTS');
    assert.deepEqual(await rowCounts(), before);
    // The other role of the same device is still free.
    assert.equal((await enrol({ eui64, keyRole: 'keyAgreement', csr: k2!.csr.toString('base64') })).statusCode, 201);
  });

  it("another manufacturer's device (outside this one's EUI-64 ranges) -> 403 EUI64_OUTSIDE_RANGE, nothing written", async () => {
    const eui64 = newEui();
    const [k1, k2] = generateDeviceKeys(2);
    assert.equal((await enrol({ eui64, keyRole: 'digitalSignature', csr: k1!.csr.toString('base64') })).statusCode, 201);
    const before = await rowCounts();
    const res = await enrol({ eui64, keyRole: 'keyAgreement', csr: k2!.csr.toString('base64') }, otherFactoryToken);
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json<{ code: string }>().code, 'EUI64_OUTSIDE_RANGE');
    assert.deepEqual(await rowCounts(), before);
  });
});
