import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEui64 } from '@fleetpki/manifest';
import { setManufacturerManifestKey, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, openssl, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * Raw public keys online (issue 40 §4): the batch path takes a raw key only from a manifest the
 * manufacturer's registered key signed; online enrolment follows the same rule: a CSR (proof of
 * possession), or a raw key with a statement the manufacturer's key signed. Over real HTTP.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let base: string;
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-raw-keys-'));
const SIGNING_MAKER = 'raw-key-maker';
const KEYLESS_MAKER = 'raw-key-keyless-maker';
let signingToken: string;
let keylessToken: string;
let manufacturerKey: KeyObject;

/** The statement README documents, built here from its description (not from the server's code). */
function statement(manufacturer: string, eui64: string, keyRole: string, spki: Buffer): Buffer {
  return Buffer.from(`fleetpki-raw-key/1\n${manufacturer}\n${eui64}\n${keyRole}\n${spki.toString('base64')}\n`);
}

function signedBy(key: KeyObject, manufacturer: string, eui64: string, keyRole: string, spki: Buffer): string {
  return sign('sha256', statement(manufacturer, eui64, keyRole, spki), key).toString('base64');
}

async function enrol(token: string, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/v1/enrolments`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function rowsFor(eui64: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT (SELECT count(*) FROM devices WHERE eui64 = $1) + (SELECT count(*) FROM issuance_intents WHERE eui64 = $1) + (SELECT count(*) FROM certificates WHERE eui64 = $1) AS n', [Buffer.from(eui64, 'hex')]);
  return Number(rows[0]!.n);
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  // createToken registers each manufacturer with its block of device ids (syntheticEui64).
  signingToken = await createToken(pool, 'factory', SIGNING_MAKER, 'raw-key-line');
  keylessToken = await createToken(pool, 'factory', KEYLESS_MAKER, 'raw-key-keyless-line');
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  manufacturerKey = pair.privateKey;
  await setManufacturerManifestKey(pool, SIGNING_MAKER, pair.publicKey.export({ format: 'der', type: 'spki' }));
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = localUrl(config, 'api', (runtime.app.server.address() as AddressInfo).port);
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

describe('raw public keys online', () => {
  it('a raw key without a statement signed by the manufacturer is refused and nothing is written (reproduced: 201, even with no manifest key registered)', async () => {
    for (const [maker, token] of [[KEYLESS_MAKER, keylessToken], [SIGNING_MAKER, signingToken]] as const) {
      const [key] = generateDeviceKeys(1);
      const eui64 = syntheticEui64(maker);
      const res = await enrol(token, { eui64, keyRole: 'digitalSignature', publicKey: key!.publicKeySpki.toString('base64') });
      assert.equal(res.status, 422, `${maker}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, 'RAW_KEY_UNSIGNED');
      assert.equal(await rowsFor(eui64), 0);
    }
  });

  it("a raw key with the statement the manufacturer's registered key signed is certified; openssl verifies the certificate", async () => {
    const [key] = generateDeviceKeys(1);
    const eui64 = syntheticEui64(SIGNING_MAKER);
    const res = await enrol(signingToken, { eui64, keyRole: 'keyAgreement', publicKey: key!.publicKeySpki.toString('base64'), publicKeySignature: signedBy(manufacturerKey, SIGNING_MAKER, eui64, 'keyAgreement', key!.publicKeySpki) });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const path = join(dir, `${eui64}.pem`);
    writeFileSync(path, String(res.body.certificate));
    assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, path]), /: OK/);
  });

  it('a statement signed by another key, or for another device, role, key or manufacturer, is refused and writes nothing', async () => {
    const [key, other] = generateDeviceKeys(2);
    const spki = key!.publicKeySpki;
    const eui64 = syntheticEui64(SIGNING_MAKER);
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const cases: [string, string][] = [
      ['signed by a key that is not the manufacturer\'s', signedBy(stranger, SIGNING_MAKER, eui64, 'digitalSignature', spki)],
      ['for another device', signedBy(manufacturerKey, SIGNING_MAKER, syntheticEui64(SIGNING_MAKER), 'digitalSignature', spki)],
      ['for another key role', signedBy(manufacturerKey, SIGNING_MAKER, eui64, 'keyAgreement', spki)],
      ['for another key', signedBy(manufacturerKey, SIGNING_MAKER, eui64, 'digitalSignature', other!.publicKeySpki)],
      ['for another manufacturer', signedBy(manufacturerKey, KEYLESS_MAKER, eui64, 'digitalSignature', spki)],
      ['not a signature', randomBytes(70).toString('base64')],
    ];
    for (const [what, publicKeySignature] of cases) {
      const res = await enrol(signingToken, { eui64, keyRole: 'digitalSignature', publicKey: spki.toString('base64'), publicKeySignature });
      assert.equal(res.status, 422, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, 'RAW_KEY_SIGNATURE_INVALID', what);
    }
    assert.equal(await rowsFor(eui64), 0);
    // A manufacturer with no registered key has nothing a statement could be checked with.
    const keyless = syntheticEui64(KEYLESS_MAKER);
    const res = await enrol(keylessToken, { eui64: keyless, keyRole: 'digitalSignature', publicKey: spki.toString('base64'), publicKeySignature: signedBy(stranger, KEYLESS_MAKER, keyless, 'digitalSignature', spki) });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.code, 'MANIFEST_KEY_MISSING');
    // A statement belongs with a raw key only.
    const [withCsr] = generateDeviceKeys(1);
    const csrAndStatement = await enrol(signingToken, { eui64, keyRole: 'digitalSignature', csr: withCsr!.csr.toString('base64'), publicKeySignature: signedBy(manufacturerKey, SIGNING_MAKER, eui64, 'digitalSignature', spki) });
    assert.equal(csrAndStatement.status, 400);
    assert.equal(csrAndStatement.body.code, 'KEY_SOURCE_INVALID');
  });

  it('a CSR needs no statement: its signature is the proof of possession', async () => {
    const [key] = generateDeviceKeys(1);
    const res = await enrol(keylessToken, { eui64: syntheticEui64(KEYLESS_MAKER), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });
});
