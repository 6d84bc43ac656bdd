import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { DeviceKeyService, issueApiToken, issueOrganisationCertificate } from '@fleetpki/ca';
import { readPkiMessage } from '@fleetpki/cmp';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { createIssuerRuntime, readTlsMaterial, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEuiBlock, syntheticEui64 } from '@fleetpki/manifest';
import { listCas, listMasterKeys, setManufacturerTransportKey, upsertManufacturer, type Pool } from '@fleetpki/store';
import { generateDeviceKeys, toPem } from '@fleetpki/x509';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { httpsCall } from './support/https.js';
import { ensureSites } from './support/sites.js';

/**
 * EUI-64 ranges (issue 40 §6): a manufacturer enrols only device ids inside the ranges registered to it,
 * whatever the protocol (JSON API, EST, CMP, batch intake, device keys); first intent no longer wins.
 * Reproduced before: a factory claimed an unclaimed EUI-64 of another manufacturer's block (201).
 * One issuer API over HTTPS (EST needs it), reached by real clients (node https, openssl cmp).
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let port: number;
let tlsCa: Buffer;
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-ranges-'));
const file = (name: string) => join(dir, name);
const suffix = randomBytes(3).toString('hex');
const OWNER = 'range-owner';
const CLAIMANT = 'range-claimant';
const UNRANGED = `range-none-${suffix}`;
const tokens: Record<string, string> = {};
let adminFile: string;
let cmpReference: string;
let cmpSecret: string;

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

function api(path: string, token: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return httpsCall(`https://127.0.0.1:${port}${path}`, {
    ca: tlsCa,
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), method: 'POST' } : {}),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
  }).then((a) => ({ status: a.status, body: a.body ? (JSON.parse(a.body) as Record<string, unknown>) : {} }));
}

async function rowsFor(eui64: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT (SELECT count(*) FROM devices WHERE eui64 = $1) + (SELECT count(*) FROM issuance_intents WHERE eui64 = $1) + (SELECT count(*) FROM device_key_checks WHERE eui64 = $1) AS n', [Buffer.from(eui64, 'hex')]);
  return Number(rows[0]!.n);
}

/** The refusal every protocol gives: a stable code, the device and the manufacturer named. */
function assertOutsideRange(answer: { status: number; body: Record<string, unknown> }, eui64: string, manufacturer: string): void {
  assert.equal(answer.status, 403, JSON.stringify(answer.body));
  assert.equal(answer.body.code, 'EUI64_OUTSIDE_RANGE');
  assert.match(String(answer.body.message), new RegExp(`${eui64}.*${manufacturer}`));
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  adminFile = file('admin.token');
  writeFileSync(adminFile, await createToken(pool, 'administrator', null, `range-admin-${suffix}`));
  // Manufacturers registered bare (createToken would give them their block): an administrator gives
  // two of them their ranges here, the third has none.
  for (const maker of [OWNER, CLAIMANT, UNRANGED]) {
    await upsertManufacturer(pool, maker, `${maker} (tests)`);
    tokens[maker] = await issueApiToken(pool, { site: 'a', actor: 'test', name: `${maker}-line-${suffix}`, role: 'factory', manufacturerId: maker });
  }
  for (const maker of [OWNER, CLAIMANT]) await cli(['manufacturers', 'add-range', maker, '--prefix', syntheticEuiBlock(maker), '--token-file', adminFile]);

  // The API's server certificate, issued here into a folder of this test's own.
  const keyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  try {
    const serverKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const issued = await issueOrganisationCertificate(pool, keyStore, 'a', { purpose: 'server', subject: { organization: 'fleetpki', commonName: 'ranges test' }, publicKeySpki: serverKey.publicKey.export({ format: 'der', type: 'spki' }), days: 1, names: ['127.0.0.1'], actor: 'test' });
    const cas = await listCas(pool);
    const org = toPem(cas.find((c) => c.id === 'org1')!.certificate);
    const root = toPem(cas.find((c) => c.id === 'root')!.certificate);
    writeFileSync(file('server.key'), serverKey.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    writeFileSync(file('server.pem'), toPem(issued.der) + org);
    writeFileSync(file('clients-ca.pem'), org + root);
    tlsCa = readFileSync(file('clients-ca.pem'));
    for (const role of ['mac', 'enc'] as const) if (!(await listMasterKeys(pool)).some((m) => m.role === role && m.status === 'active')) await new DeviceKeyService(pool, keyStore, 'a').createMasterKey(role, 'test');
  } finally {
    await keyStore.close();
  }
  await setManufacturerTransportKey(pool, CLAIMANT, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4, tls: readTlsMaterial(dir) });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  port = (runtime.app.server.address() as AddressInfo).port;
  const secret = await api('/v1/cmp/secrets', readFileSync(adminFile, 'utf8'), { reference: `range-line-${suffix}`, manufacturer: CLAIMANT });
  assert.equal(secret.status, 201, JSON.stringify(secret.body));
  cmpReference = `range-line-${suffix}`;
  cmpSecret = String(secret.body.secret);
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

describe('registering ranges', () => {
  it("an administrator registers a manufacturer's block; overlaps, blocks holding another manufacturer's devices and other roles are refused", async () => {
    const listed = await cli(['manufacturers', 'ranges', OWNER]);
    assert.equal(listed.code, 0, listed.stderr);
    const block = syntheticEuiBlock(OWNER);
    assert.match(listed.stdout, new RegExp(`${OWNER}\\s+${block}0000000000\\s+${block}FFFFFFFFFF`));
    const { rows } = await pool.query<{ actor: string }>("SELECT actor FROM audit_events WHERE action = 'manufacturer.range' AND subject = $1", [OWNER]);
    assert.match(rows[0]?.actor ?? '', /^person:range-admin-[0-9a-f]+ via token:/);

    const again = await cli(['manufacturers', 'add-range', OWNER, '--prefix', block, '--token-file', adminFile]);
    assert.equal(again.code, 0, 'the same range again changes nothing');
    const overlap = await cli(['manufacturers', 'add-range', CLAIMANT, '--first', `${block}00000000FF`, '--last', `${block}0000000FFF`, '--token-file', adminFile]);
    assert.match(overlap.stderr, new RegExp(`EUI64_RANGE_OVERLAP: .*${OWNER}`));
    // A device the claimant registered before ranges existed: its block cannot go to someone else.
    const spare = randomBytes(2).toString('hex').toUpperCase();
    const held = `00${spare}${randomBytes(5).toString('hex').toUpperCase()}`;
    await pool.query("INSERT INTO devices (eui64, manufacturer_id, device_type) VALUES ($1, $2, 'smart-meter')", [Buffer.from(held, 'hex'), CLAIMANT]);
    const foreign = await cli(['manufacturers', 'add-range', OWNER, '--prefix', `00${spare}`, '--token-file', adminFile]);
    assert.match(foreign.stderr, new RegExp(`EUI64_RANGE_HOLDS_DEVICES: .*${held}.*${CLAIMANT}`));
    const backwards = await cli(['manufacturers', 'add-range', OWNER, '--first', `${block}0000000002`, '--last', `${block}0000000001`, '--token-file', adminFile]);
    assert.match(backwards.stderr, /EUI64_RANGE_INVALID/);
    const factory = await cli(['manufacturers', 'add-range', CLAIMANT, '--prefix', block, '--token-file', writeAndReturn('factory.token', tokens[CLAIMANT]!)]);
    assert.match(factory.stderr, /ROLE_FORBIDDEN/);
    const anonymous = await cli(['manufacturers', 'add-range', CLAIMANT, '--prefix', block]);
    assert.match(anonymous.stderr, /TOKEN_MISSING/);
  });
});

function writeAndReturn(name: string, content: string): string {
  writeFileSync(file(name), content);
  return file(name);
}

describe("a factory cannot claim another manufacturer's device ids", () => {
  it("JSON API: an unclaimed id in another manufacturer's block is refused (reproduced: 201, the first intent won); its owner enrols it afterwards", async () => {
    const eui64 = syntheticEui64(OWNER);
    const [key] = generateDeviceKeys(1);
    const claim = await api('/v1/enrolments', tokens[CLAIMANT]!, { eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    assertOutsideRange(claim, eui64, CLAIMANT);
    assert.equal(await rowsFor(eui64), 0, 'nothing written: the device is not claimed');
    const owner = await api('/v1/enrolments', tokens[OWNER]!, { eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    assert.equal(owner.status, 201, JSON.stringify(owner.body));
  });

  it('a manufacturer with no range registered enrols nothing', async () => {
    const eui64 = syntheticEui64(UNRANGED);
    const [key] = generateDeviceKeys(1);
    const res = await api('/v1/enrolments', tokens[UNRANGED]!, { eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    assertOutsideRange(res, eui64, UNRANGED);
    assert.match(String(res.body.message), /no EUI-64 range/);
    assert.equal(await rowsFor(eui64), 0);
  });

  it('EST simpleenroll: refused the same way', async () => {
    const eui64 = syntheticEui64(OWNER);
    const key = file(`est-${eui64}.key`);
    assert.equal((await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key])).code, 0);
    const csr = await run('openssl', ['req', '-new', '-key', key, '-subj', `/serialNumber=${eui64}`, '-outform', 'DER', '-out', file(`est-${eui64}.csr`)]);
    assert.equal(csr.code, 0, csr.stderr);
    const res = await httpsCall(`https://127.0.0.1:${port}/.well-known/est/simpleenroll`, {
      ca: tlsCa,
      body: readFileSync(file(`est-${eui64}.csr`)).toString('base64'),
      headers: { 'content-type': 'application/pkcs10', authorization: `Basic ${Buffer.from(`line:${tokens[CLAIMANT]}`).toString('base64')}` },
    });
    assert.equal(res.status, 403, `a certificate or another answer: ${res.body.slice(0, 200)}`);
    assertOutsideRange({ status: res.status, body: JSON.parse(res.body) as Record<string, unknown> }, eui64, CLAIMANT);
    assert.equal(await rowsFor(eui64), 0);
  });

  it('CMP p10cr with the factory MAC: refused with notAuthorized', async () => {
    const eui64 = syntheticEui64(OWNER);
    const key = file(`cmp-${eui64}.key`);
    assert.equal((await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key])).code, 0);
    assert.equal((await run('openssl', ['req', '-new', '-key', key, '-subj', `/serialNumber=${eui64}`, '-outform', 'DER', '-out', file(`cmp-${eui64}.csr`)])).code, 0);
    const out = await run('openssl', ['cmp', '-cmd', 'p10cr', '-server', `127.0.0.1:${port}`, '-path', '.well-known/cmp', '-tls_used', '-tls_trusted', file('clients-ca.pem'), '-ref', cmpReference, '-secret', `pass:${cmpSecret}`, '-csr', file(`cmp-${eui64}.csr`), '-certout', file(`cmp-${eui64}.pem`), '-rspout', file(`cmp-${eui64}.rsp`), '-msg_timeout', '30']);
    assert.notEqual(out.code, 0, 'a certificate was issued');
    const answer = readPkiMessage(readFileSync(file(`cmp-${eui64}.rsp`)));
    assert.equal(answer.body.type, 'error');
    const body = answer.body as { failInfo: readonly number[]; texts: readonly string[] };
    assert.deepEqual(body.failInfo, [23], 'notAuthorized (RFC 4210 PKIFailureInfo bit 23)');
    assert.match(body.texts.join(' '), new RegExp(`${eui64}.*${CLAIMANT}`));
    assert.equal(await rowsFor(eui64), 0);
  });

  it("batch intake: lines outside the manufacturer's ranges are refused, each named; with onInvalid=skip they are left out", async () => {
    // First octet 01: the U/L bit clear, never a synthetic block (syntheticEuiBlock), so in nobody's range.
    const [mine, theirs, nobodys] = [syntheticEui64(CLAIMANT), syntheticEui64(OWNER), `01${randomBytes(7).toString('hex').toUpperCase()}`];
    const manifest = [mine, theirs, nobodys].map((eui64) => JSON.stringify({ eui64, keys: [{ role: 'digitalSignature', csr: generateDeviceKeys(1)[0]!.csr.toString('base64') }] })).join('\n') + '\n';
    const refused = await api('/v1/batches', tokens[CLAIMANT]!, manifest, { 'content-type': 'application/x-ndjson' });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'MANIFEST_REJECTED');
    const errors = (refused.body.details as { errors: { line: number; code: string; message: string }[] }).errors;
    assert.deepEqual(errors.map((e) => [e.line, e.code]), [[2, 'EUI64_OUTSIDE_RANGE'], [3, 'EUI64_OUTSIDE_RANGE']]);
    assert.match(errors[0]!.message, new RegExp(`${theirs}.*${CLAIMANT}`));
    for (const eui64 of [mine, theirs, nobodys]) assert.equal(await rowsFor(eui64), 0);
    const skipped = await api('/v1/batches?onInvalid=skip', tokens[CLAIMANT]!, manifest, { 'content-type': 'application/x-ndjson' });
    assert.equal(skipped.status, 201, JSON.stringify(skipped.body));
    assert.equal(skipped.body.certificatesRequested, 1);
  });

  it('device keys online: refused before any key is diversified for a device outside the range', async () => {
    const eui64 = syntheticEui64(OWNER);
    const [key] = generateDeviceKeys(1);
    const res = await api('/v1/enrolments', tokens[CLAIMANT]!, { eui64, keyRole: 'digitalSignature', profile: 'smart-meter', csr: key!.csr.toString('base64'), deviceKeys: true });
    assertOutsideRange(res, eui64, CLAIMANT);
    assert.equal(await rowsFor(eui64), 0, 'no device key check value stored');
  });
});
