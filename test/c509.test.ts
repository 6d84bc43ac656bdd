import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { X509Certificate, createPublicKey, sign } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { FleetApiClient, type ResultLine } from '@fleetpki/client';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, syntheticEui64, syntheticRunPrefix } from '@fleetpki/manifest';
import type { Pool } from '@fleetpki/store';
import { buildNativeC509RequestP256, c509ToX509, generateDeviceKeys, parseC509, pkcs10ToC509, toPem, verifyNativeC509, x509ToC509 } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { createToken, ensureCa, openssl, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';

const MAKER = 'c509-maker';
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let baseUrl: string;
let token: string;
let worker: ChildProcess | undefined;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  token = await createToken(pool, 'factory', MAKER);
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 2, poolSize: 6 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
});

after(async () => {
  if (worker) await stopProcess(worker);
  await runtime?.close();
  await pool?.end();
});

/** A device id of the factory's manufacturer, written with separators (any EUI-64 notation is accepted). */
const eui = () => syntheticEui64(MAKER).replace(/(..)(?!$)/g, '$1-');

async function enrol(body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${baseUrl}/v1/enrolments`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ keyRole: 'digitalSignature', ...body }) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function verifyDer(der: Buffer, name: string): void {
  const path = writeCaFile(ca, `${name}.pem`, toPem(der));
  assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, path]), /: OK/);
}

async function intentCount(): Promise<number> {
  return Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM issuance_intents')).rows[0]!.n);
}

describe('C509 on online enrolment', () => {
  it('format=c509 returns the re-encoded certificate: back to DER it is the stored one and OpenSSL verifies it', async () => {
    for (const profile of ['smart-meter', 'smart-meter-compact']) {
      const [key] = generateDeviceKeys(1);
      const { status, json } = await enrol({ eui64: eui(), profile, csr: key!.csr.toString('base64'), format: 'c509' });
      assert.equal(status, 201, JSON.stringify(json));
      assert.equal(json.format, 'c509');
      const c509 = Buffer.from(json.certificate as string, 'base64');
      const der = c509ToX509(c509);
      verifyDer(der, `enrol-${profile}`);
      const stored = await (await fetch(`${baseUrl}/v1/certificates/${json.serial}?format=der`, { headers: { authorization: `Bearer ${token}` } })).json() as { certificate: string };
      assert.equal(der.toString('base64'), stored.certificate);
      assert.ok(c509.length < der.length / 2 + 10, `${profile}: ${c509.length} bytes C509 for ${der.length} DER`);
      console.log(`# ${profile}: DER ${der.length} bytes, C509 ${c509.length} bytes`);
    }
  });

  it('accepts C509 certification requests: type 3 (re-encoded PKCS#10) and type 2 (signed over the CBOR)', async () => {
    const [k3, k2] = generateDeviceKeys(2);
    const type3 = await enrol({ eui64: eui(), c509Csr: pkcs10ToC509(k3!.csr).toString('base64'), format: 'der' });
    assert.equal(type3.status, 201, JSON.stringify(type3.json));
    const native = buildNativeC509RequestP256(k2!.publicKeySpki, (tbs) => sign('sha256', tbs, k2!.privateKey));
    const type2 = await enrol({ eui64: eui(), c509Csr: native.toString('base64'), format: 'der' });
    assert.equal(type2.status, 201, JSON.stringify(type2.json));
    const der = Buffer.from(type2.json.certificate as string, 'base64');
    verifyDer(der, 'enrol-c509csr');
    // The certified key is the one the type-2 request proved.
    const certified = new X509Certificate(der).publicKey.export({ format: 'der', type: 'spki' });
    assert.equal(certified.toString('hex'), k2!.publicKeySpki.toString('hex'));
  });

  it('refuses bad C509 requests with a clear 4xx and records nothing', async () => {
    const before = await intentCount();
    const [k] = generateDeviceKeys(1);
    const native = buildNativeC509RequestP256(k!.publicKeySpki, (tbs) => sign('sha256', tbs, k!.privateKey));
    const forged = Buffer.from(native);
    forged[forged.length - 5] = forged[forged.length - 5]! ^ 0x40;
    const cases: [unknown, string, RegExp][] = [
      [forged.toString('base64'), 'CSR_SIGNATURE_INVALID', /does not verify/],
      [native.subarray(0, 20).toString('base64'), 'CSR_MALFORMED', /not a single well-formed CBOR item/],
      [Buffer.from('8b03', 'hex').toString('base64'), 'CSR_MALFORMED', /CBOR/],
      [Buffer.from('8702000001400080', 'hex').toString('base64'), 'CSR_MALFORMED', /c509Csr/],
      ['###', 'CSR_MALFORMED', /base64/],
    ];
    for (const [c509Csr, code, message] of cases) {
      const { status, json } = await enrol({ eui64: eui(), c509Csr });
      assert.equal(status, 400, JSON.stringify(json));
      assert.equal(json.code, code, JSON.stringify(json));
      assert.match(json.message as string, message);
    }
    const both = await enrol({ eui64: eui(), c509Csr: native.toString('base64'), csr: k!.csr.toString('base64') });
    assert.equal(both.json.code, 'KEY_SOURCE_INVALID');
    assert.equal(await intentCount(), before);
  });

  it('smart-meter-compact-c509: the HSM signs the CBOR TBS; the certificate verifies with the issuing CA key and has no DER form', async () => {
    const [key] = generateDeviceKeys(1);
    const before = await intentCount();
    const refused = await enrol({ eui64: eui(), profile: 'smart-meter-compact-c509', csr: key!.csr.toString('base64'), format: 'pem' });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.code, 'CERTIFICATE_FORMAT_UNAVAILABLE');
    assert.equal(await intentCount(), before, 'a refused format records no intent');
    const { status, json } = await enrol({ eui64: eui(), profile: 'smart-meter-compact-c509', csr: key!.csr.toString('base64') });
    assert.equal(status, 201, JSON.stringify(json));
    assert.equal(json.format, 'c509');
    const c509 = Buffer.from(json.certificate as string, 'base64');
    const issuingKey = createPublicKey(openssl(['x509', '-in', ca.issuingPem, '-pubkey', '-noout']));
    assert.equal(verifyNativeC509(c509, issuingKey), true);
    const parsed = parseC509(c509);
    assert.equal(parsed.type, 2);
    assert.equal(parsed.serial.toString('hex').toUpperCase(), json.serial);
    assert.equal(parsed.subjectPublicKeyInfo.toString('hex'), key!.publicKeySpki.toString('hex'));
    assert.throws(() => c509ToX509(c509), { code: 'C509_UNCONVERTIBLE' });
    console.log(`# smart-meter-compact-c509 (type 2): ${c509.length} bytes`);
  });
});

describe('C509 on batch results', () => {
  it('a 10,000-device batch: every certificate round-trips byte-exactly between ?format=der and ?format=c509', async () => {
    const client = new FleetApiClient(baseUrl, token);
    worker = startService(config, 'batch-worker', { FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'error' });
    const path = join(ca.dir, 'c509-batch.ndjson');
    await generateManifest({ devices: 10_000, out: path, roles: ['digitalSignature'], keyForm: 'csr', threads: 2, euiPrefix: syntheticRunPrefix(MAKER) });
    const { batch } = await client.submitBatch(path, { profile: 'smart-meter-compact' });
    await waitFor('batch complete', async () => ((await client.getBatch(batch.id)).status === 'complete' ? true : undefined), 240_000, 250);
    const collect = async (format: 'der' | 'c509') => {
      const lines: ResultLine[] = [];
      for await (const line of client.batchResults(batch.id, undefined, format)) if (line.type === 'certificate') lines.push(line);
      return lines as (ResultLine & { serial: string; certificate: string })[];
    };
    const der = await collect('der');
    const c509 = await collect('c509');
    assert.equal(der.length, 10_000);
    assert.equal(c509.length, 10_000);
    let derBytes = 0;
    let c509Bytes = 0;
    let largest = 0;
    for (let i = 0; i < der.length; i++) {
      assert.equal(c509[i]!.serial, der[i]!.serial);
      const d = Buffer.from(der[i]!.certificate, 'base64');
      const c = Buffer.from(c509[i]!.certificate, 'base64');
      assert.ok(c509ToX509(c).equals(d), `serial ${der[i]!.serial}: C509 does not give the DER back`);
      assert.ok(x509ToC509(d).equals(c));
      derBytes += d.length;
      c509Bytes += c.length;
      largest = Math.max(largest, c.length);
    }
    for (const i of [0, 4_999, 9_999]) verifyDer(c509ToX509(Buffer.from(c509[i]!.certificate, 'base64')), `batch-${i}`);
    console.log(`# 10,000 certificates round-tripped: DER mean ${(derBytes / 10_000).toFixed(1)} B, C509 mean ${(c509Bytes / 10_000).toFixed(1)} B (largest ${largest} B)`);
    const bad = await fetch(`${baseUrl}/v1/batches/${batch.id}/results?format=xml`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bad.status, 400);
  });
});
