import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { buildIssuerApi, createIssuerRuntime, readTlsMaterial, type IssuerRuntime } from '@fleetpki/issuer-api';
import { loadSiteIssuer } from '@fleetpki/ca';
import { openSiteDaemons, type SiteDaemons } from '@fleetpki/daemons';
import { ChunkQueue } from '@fleetpki/queue';
import { toPem } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createPool, type Pool } from '@fleetpki/store';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites } from './support/sites.js';
import { httpsCall, type HttpsAnswer } from './support/https.js';

/**
 * EST (RFC 7030) against real clients: strongSwan's `pki --estca` / `pki --est` and the curl + openssl
 * recipe of the README, over HTTPS with the organisation CA's server certificate.
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let reconcilers: SiteDaemons | undefined;
let base: string;
let factoryToken: string;
let otherFactoryToken: string;
let adminToken: string;
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-est-'));
const MAKER = 'est-maker';
const SUPERSEDED_GRACE_S = 20;
let renewedSerial = '';
const OTHER_MAKER = 'est-other-maker';
const file = (name: string) => join(dir, name);

/** A child process, asynchronously: the server it talks to runs in this process. */
function run(command: string, args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

const sh = (script: string) => run('sh', ['-c', script]);

/** strongSwan reads one certificate per --cacert file: the TLS chain, the root and the issuing CA, each alone. */
function splitPem(path: string, prefix: string): string[] {
  return readFileSync(path, 'utf8')
    .split(/(?<=-----END CERTIFICATE-----\n)/)
    .filter((p) => p.includes('BEGIN'))
    .map((pem, i) => {
      const out = file(`${prefix}-${i}.pem`);
      writeFileSync(out, pem);
      return out;
    });
}

let tlsTrust: string[];
const pkiTrust = () => [...tlsTrust, ca.rootPem, ca.issuingPem].flatMap((f) => ['--cacert', f]);

type Answer = HttpsAnswer;

function estRequest(path: string, options: { method?: string; body?: string; contentType?: string; auth?: string; cert?: string; key?: string; base?: string } = {}): Promise<Answer> {
  return httpsCall(`${options.base ?? base}${path}`, {
    ca: readFileSync(join(config.api.tlsDir, 'clients-ca.pem')),
    ...(options.method ? { method: options.method } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(options.cert ? { cert: readFileSync(options.cert), key: readFileSync(options.key!) } : {}),
    headers: { ...(options.contentType ? { 'content-type': options.contentType } : {}), ...(options.auth ? { authorization: options.auth } : {}) },
  });
}

const basic = (token: string) => `Basic ${Buffer.from(`line-7:${token}`).toString('base64')}`;
/** A device id of the factory's manufacturer (inside its registered EUI-64 block). */
const newEui = () => syntheticEui64(MAKER);

/** A P-256 key and a DER CSR naming the device by subject serialNumber (pki --req). */
async function strongswanCsr(name: string, eui64: string, key?: string): Promise<{ key: string; csr: string }> {
  const keyPath = key ?? file(`${name}.key`);
  if (!key) assert.equal((await sh(`pki --gen --type ecdsa --size 256 --outform pem > ${keyPath} 2>/dev/null`)).code, 0);
  const csr = file(`${name}.csr`);
  const made = await sh(`pki --req --in ${keyPath} --type ecdsa --dn "C=GB, O=${MAKER}, serialNumber=${eui64}" --digest sha256 --outform der > ${csr} 2>/dev/null`);
  assert.equal(made.code, 0);
  return { key: keyPath, csr };
}

/** What a device's rows are: intents, certificates, the device itself. */
async function rowsFor(eui64: string): Promise<{ intents: number; certificates: number; devices: number }> {
  const { rows } = await pool.query<{ intents: number; certificates: number; devices: number }>(
    `SELECT (SELECT count(*)::int FROM issuance_intents WHERE eui64 = $1) AS intents, (SELECT count(*)::int FROM certificates WHERE eui64 = $1) AS certificates,
            (SELECT count(*)::int FROM devices WHERE eui64 = $1) AS devices`,
    [Buffer.from(eui64, 'hex')],
  );
  return rows[0]!;
}

async function verify(pemPath: string): Promise<string> {
  return (await run('openssl', ['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, pemPath])).stdout.trim();
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  factoryToken = await createToken(pool, 'factory', MAKER, 'est-factory');
  otherFactoryToken = await createToken(pool, 'factory', OTHER_MAKER, 'est-other-factory');
  adminToken = await createToken(pool, 'administrator', null, 'est-admin');
  const server = await cli(['tls', 'server'], { FLEETPKI_TOKEN: adminToken });
  assert.equal(server.code, 0, server.stderr);
  tlsTrust = splitPem(join(config.api.tlsDir, 'clients-ca.pem'), 'tls');
  // Superseded certificates are revoked 20 s after their re-enrolment by the daemons' est-superseded
  // job, which looks every second (its interval follows the intent timeout).
  const estConfig = { ...config.est, revokeSupersededAfterSeconds: SUPERSEDED_GRACE_S };
  // compact-kex (profile smart-meter-compact, keyAgreement) is held for an administrator, whatever the protocol.
  runtime = await createIssuerRuntime({ ...config, site: 'a', est: estConfig, enrolmentHolds: { labels: ['compact-kex'], retryAfterSeconds: 1 }, intentTimeoutSeconds: 4 }, { logger: false, hsmSessions: 1, poolSize: 4, tls: readTlsMaterial(config.api.tlsDir) });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = `https://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
  reconcilers = await openSiteDaemons({ ...config, site: 'a', est: estConfig, intentTimeoutSeconds: 4 }, { only: ['est-superseded'], logger: false });
  reconcilers.start();
});

after(async () => {
  await reconcilers?.close();
  await runtime?.close();
  await pool?.end();
});

describe('EST with strongSwan pki', () => {
  it('pki --estca fetches the issuing CA and the root, as the CA holds them', async () => {
    const out = await run('pki', ['--estca', '--url', base, ...tlsTrust.flatMap((f) => ['--cacert', f]), '--caout', file('cacert.pem'), '--outform', 'pem', '--force']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(readFileSync(file('cacert.pem'), 'utf8'), readFileSync(ca.rootPem, 'utf8'), 'the root, written as cacert.pem');
    assert.equal(readFileSync(file('cacert-1.pem'), 'utf8'), readFileSync(ca.issuingPem, 'utf8'), 'the issuing CA, written as cacert-1.pem');
    assert.match(out.stderr, /Sub CA cert is trusted/);
  });

  it('pki --est enrols with a factory credential (HTTP Basic, its API token); the certificate passes openssl verify', async () => {
    const eui64 = newEui();
    const { csr } = await strongswanCsr('enrol', eui64);
    const out = await run('pki', ['--est', '--url', `${base}/.well-known/est/compact-signing`, ...pkiTrust(), '--in', csr, '--userpass', `line-7:${factoryToken}`, '--outform', 'pem']);
    assert.equal(out.code, 0, out.stderr);
    writeFileSync(file('enrol.pem'), out.stdout);
    assert.equal(await verify(file('enrol.pem')), `${file('enrol.pem')}: OK`);
    const { rows } = await pool.query<{ profile: string; key_role: string; actor: string }>(
      `SELECT c.profile, c.key_role, a.actor FROM certificates c JOIN audit_events a ON a.subject = encode(c.serial, 'hex') AND a.action = 'issuance.certificate' WHERE c.eui64 = $1`,
      [Buffer.from(eui64, 'hex')],
    );
    assert.deepEqual(rows.map((r) => [r.profile, r.key_role]), [['smart-meter-compact', 'digitalSignature']], 'the label chose the profile and key role');
    assert.match(rows[0]!.actor, /^person:est-factory via token:/, 'the same audit row as the JSON API, with the factory as actor');
  });

  it('pki --est --cert old --key old re-keys the device over TLS: a new certificate, the old one superseded and still good', async () => {
    const eui64 = newEui();
    const first = await strongswanCsr('old', eui64);
    const enrolled = await run('pki', ['--est', '--url', `${base}/.well-known/est/compact-signing`, ...pkiTrust(), '--in', first.csr, '--userpass', `line-7:${factoryToken}`, '--outform', 'pem']);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    writeFileSync(file('old.pem'), enrolled.stdout);
    const second = await strongswanCsr('new', eui64);
    const renewed = await run('pki', ['--est', '--url', `${base}/.well-known/est/compact-signing`, ...pkiTrust(), '--in', second.csr, '--cert', file('old.pem'), '--key', first.key, '--outform', 'pem']);
    assert.equal(renewed.code, 0, renewed.stderr);
    writeFileSync(file('new.pem'), renewed.stdout);
    assert.equal(await verify(file('new.pem')), `${file('new.pem')}: OK`);
    const serialOf = async (pem: string) => (await run('openssl', ['x509', '-in', pem, '-noout', '-serial'])).stdout.trim().replace('serial=', '').toLowerCase();
    const [oldSerial, newSerial] = [await serialOf(file('old.pem')), await serialOf(file('new.pem'))];
    assert.notEqual(oldSerial, newSerial);
    const { rows } = await pool.query<{ serial: string; active: boolean; renewed: boolean; revoked: boolean }>(
      `SELECT encode(i.serial, 'hex') AS serial, i.active, i.renewed_at IS NOT NULL AS renewed, EXISTS (SELECT 1 FROM revocations r WHERE r.serial = i.serial) AS revoked
         FROM issuance_intents i WHERE i.eui64 = $1 ORDER BY i.created_at`,
      [Buffer.from(eui64, 'hex')],
    );
    assert.deepEqual(rows, [
      { serial: oldSerial, active: false, renewed: true, revoked: false },
      { serial: newSerial, active: true, renewed: false, revoked: false },
    ]);
    const audit = await pool.query(`SELECT 1 FROM audit_events WHERE action = 'certificate.superseded' AND subject = $1 AND actor = $2`, [oldSerial, `device:${eui64}`]);
    assert.equal(audit.rowCount, 1, 'the supersession is audited, with the device as actor');
    renewedSerial = oldSerial;

    // A retry after a lost answer (same CSR, the old certificate again) gets the same new certificate.
    const retry = await run('pki', ['--est', '--url', `${base}/.well-known/est/compact-signing`, ...pkiTrust(), '--in', second.csr, '--cert', file('old.pem'), '--key', first.key, '--outform', 'pem']);
    assert.equal(retry.code, 0, retry.stderr);
    assert.equal(retry.stdout, renewed.stdout);
    // Another device's certificate cannot re-key this one.
    const stranger = await strongswanCsr('stranger', newEui(), first.key);
    const refused = await estRequest('/.well-known/est/compact-signing/simplereenroll', { body: readFileSync(stranger.csr).toString('base64'), contentType: 'application/pkcs10', cert: file('new.pem'), key: second.key });
    assert.equal(refused.status, 403);
    assert.equal(JSON.parse(refused.body).code, 'REENROL_MISMATCH');
  });

  it('the superseded certificate is revoked, reason superseded, once the grace period is over', async () => {
    assert.ok(renewedSerial, 'the re-enrolment test ran first');
    const serial = Buffer.from(renewedSerial, 'hex');
    let row: { reason: number; after_s: number } | undefined;
    for (let i = 0; i < 120 && !row; i++) {
      const { rows } = await pool.query<{ reason: number; after_s: number }>(
        `SELECT r.reason, extract(epoch FROM r.created_at - i.renewed_at)::float8 AS after_s FROM revocations r JOIN issuance_intents i ON i.serial = r.serial WHERE r.serial = $1`,
        [serial],
      );
      row = rows[0];
      if (!row) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(row, `certificate ${renewedSerial} was revoked`);
    assert.equal(row.reason, 4, 'CRLReason superseded');
    assert.ok(row.after_s >= SUPERSEDED_GRACE_S, `revoked ${row.after_s} s after the re-enrolment, not before the ${SUPERSEDED_GRACE_S} s grace`);
  });

  it('a label that needs approval answers 202 with Retry-After until an administrator approves; the same CSR then gets the certificate', async () => {
    // Polled with https here, not pki --est: strongSwan 5.9.8 cuts the path off its --url when it connects
    // the first time, so its polls go to the unlabelled /.well-known/est/simpleenroll (seen: the poll
    // after a 202 from /.well-known/est/compact-kex was answered for smart-meter-signing).
    const eui64 = newEui();
    const { csr } = await strongswanCsr('held', eui64);
    const poll = () => estRequest('/.well-known/est/compact-kex/simpleenroll', { body: readFileSync(csr).toString('base64'), contentType: 'application/pkcs10', auth: basic(factoryToken) });
    const first = await poll();
    assert.equal(first.status, 202, first.body);
    assert.equal(first.headers['retry-after'], '1');
    const held = (JSON.parse(first.body) as { details: { request: string } }).details.request;
    assert.equal((await poll()).status, 202, 'still waiting');
    assert.deepEqual(await rowsFor(eui64), { intents: 0, certificates: 0, devices: 0 }, 'nothing is issued while it waits');
    const listed = (await fetchJson('/v1/est/requests', adminToken)) as { id: string; eui64: string; label: string; status: string }[];
    assert.deepEqual(listed.filter((r) => r.id === held).map((r) => [r.eui64, r.label, r.status]), [[eui64, 'compact-kex', 'pending']]);
    const factoryApproves = await estRequest(`/v1/est/requests/${held}/approve`, { method: 'POST', auth: `Bearer ${factoryToken}` });
    assert.equal(factoryApproves.status, 403, 'a factory cannot approve its own request');
    assert.equal(((await fetchJson(`/v1/est/requests/${held}/approve`, adminToken, 'POST')) as { status: string }).status, 'approved');
    const again = await estRequest(`/v1/est/requests/${held}/refuse`, { method: 'POST', auth: `Bearer ${adminToken}` });
    assert.equal(again.status, 409, 'decided once');
    const issued = await poll();
    assert.equal(issued.status, 200, issued.body);
    const pem = await run('sh', ['-c', `openssl base64 -d -A | openssl pkcs7 -inform DER -print_certs -out ${file('held.pem')}`], issued.body);
    assert.equal(pem.code, 0, pem.stderr);
    assert.equal(await verify(file('held.pem')), `${file('held.pem')}: OK`);
    assert.match((await run('openssl', ['x509', '-in', file('held.pem'), '-noout', '-ext', 'keyUsage'])).stdout, /Key Agreement/);
    const audit = await pool.query<{ action: string }>(`SELECT action FROM audit_events WHERE subject = $1 ORDER BY seq`, [held]);
    assert.deepEqual(audit.rows.map((r) => r.action), ['enrolment.request.held', 'enrolment.request.approved']);
  });
});

describe('a held label is the label, whatever the protocol', () => {
  const enrolJson = (eui64: string, csr: string, profile = 'smart-meter-compact') =>
    estRequest('/v1/enrolments', { method: 'POST', body: JSON.stringify({ eui64, keyRole: 'keyAgreement', profile, csr: readFileSync(csr).toString('base64') }), contentType: 'application/json', auth: `Bearer ${factoryToken}` });

  it("POST /v1/enrolments for compact-kex's profile and role waits for the approval (202), then the same key enrols", async () => {
    const eui64 = newEui();
    const { csr } = await strongswanCsr('held-api', eui64);
    const first = await enrolJson(eui64, csr);
    assert.equal(first.status, 202, `held like EST, not issued at once: ${first.status} ${first.body}`);
    assert.equal(first.headers['retry-after'], '1');
    const body = JSON.parse(first.body) as { code: string; details: { request: string } };
    assert.equal(body.code, 'ENROLMENT_APPROVAL_PENDING');
    assert.deepEqual(await rowsFor(eui64), { intents: 0, certificates: 0, devices: 0 }, 'nothing is issued while it waits');
    const listed = (await fetchJson('/v1/est/requests', adminToken)) as { id: string; label: string; protocol: string }[];
    assert.deepEqual(listed.filter((r) => r.id === body.details.request).map((r) => [r.label, r.protocol]), [['compact-kex', 'api']]);
    // Another profile with the same role is not the held label.
    const { csr: other } = await strongswanCsr('not-held-api', eui64);
    assert.equal((await enrolJson(eui64, other, 'smart-meter')).status, 201);
    await fetchJson(`/v1/est/requests/${body.details.request}/approve`, adminToken, 'POST');
    const issued = await enrolJson(eui64, csr);
    assert.equal(issued.status, 201, issued.body);
    // Approved for this key: EST gets the same certificate back.
    const est = await estRequest('/.well-known/est/compact-kex/simpleenroll', { body: readFileSync(csr).toString('base64'), contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(est.status, 200, est.body);
  });

  it("a batch carrying compact-kex keys is refused line by line (ENROLMENT_APPROVAL_REQUIRED); nothing is accepted", async () => {
    const eui64 = newEui();
    const { csr } = await strongswanCsr('held-batch', eui64);
    const line = JSON.stringify({ eui64, keys: [{ role: 'keyAgreement', csr: readFileSync(csr).toString('base64') }] });
    const refused = await estRequest('/v1/batches?profile=smart-meter-compact', { method: 'POST', body: `${line}\n`, contentType: 'application/x-ndjson', auth: `Bearer ${factoryToken}` });
    assert.equal(refused.status, 422, refused.body);
    const answer = JSON.parse(refused.body) as { code: string; details: { errors: { line: number; code: string }[] } };
    assert.equal(answer.code, 'MANIFEST_REJECTED');
    assert.deepEqual(answer.details.errors.map((e) => [e.line, e.code]), [[1, 'ENROLMENT_APPROVAL_REQUIRED']]);
    assert.equal((await pool.query('SELECT 1 FROM batch_items WHERE eui64 = $1', [Buffer.from(eui64, 'hex')])).rowCount, 0);
  });
});

async function fetchJson(path: string, token: string, method = 'GET'): Promise<unknown> {
  const res = await estRequest(path, { method, auth: `Bearer ${token}` });
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}

describe('EST with curl and openssl (the README recipe)', () => {
  it('a CSR with the hardwareModuleName, posted as base64 application/pkcs10, comes back as a certs-only PKCS#7 that openssl opens', async () => {
    const eui64 = newEui();
    writeFileSync(
      file('hmn.cnf'),
      `[req]\ndistinguished_name = dn\nreq_extensions = ext\nprompt = no\n[dn]\nO = ${MAKER}\n[ext]\nsubjectAltName = critical, otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn\n[hmn]\nhwType = OID:1.3.6.1.4.1.65535.1.1.1\nhwSerialNum = FORMAT:HEX,OCT:${eui64}\n`,
    );
    const trust = join(config.api.tlsDir, 'clients-ca.pem');
    const recipe = await sh(
      `set -e; cd ${dir}; openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout hmn.key -config hmn.cnf -outform DER 2>/dev/null | openssl base64 -A > hmn.b64
       curl -sS --fail-with-body --cacert ${trust} -u line-7:${factoryToken} -H 'Content-Type: application/pkcs10' --data-binary @hmn.b64 ${base}/.well-known/est/simpleenroll | openssl base64 -d -A | openssl pkcs7 -inform DER -print_certs -out hmn.pem
       openssl verify -CAfile ${ca.rootPem} -untrusted ${ca.issuingPem} hmn.pem`,
    );
    assert.equal(recipe.code, 0, recipe.stderr + recipe.stdout);
    assert.match(recipe.stdout, /hmn\.pem: OK/);
    const { rows } = await pool.query<{ profile: string }>('SELECT profile FROM certificates WHERE eui64 = $1', [Buffer.from(eui64, 'hex')]);
    assert.deepEqual(rows, [{ profile: 'smart-meter' }], 'no label: the smart-meter signing profile, for the device the hardwareModuleName names');
  });

  it('cacerts and csrattrs answer base64 DER that openssl reads', async () => {
    const cacerts = await estRequest('/.well-known/est/cacerts');
    assert.equal(cacerts.status, 200);
    assert.equal(cacerts.headers['content-type'], 'application/pkcs7-mime');
    const printed = await run('sh', ['-c', 'openssl base64 -d -A | openssl pkcs7 -inform DER -print_certs -noout'], cacerts.body);
    assert.match(printed.stdout, /subject=CN = FPD1/);
    const attrs = await estRequest('/.well-known/est/smart-meter-kex/csrattrs');
    assert.equal(attrs.status, 200);
    assert.equal(attrs.headers['content-type'], 'application/csrattrs');
    const parsed = await run('sh', ['-c', 'openssl base64 -d -A | openssl asn1parse -inform DER'], attrs.body);
    for (const expected of ['ecdsa-with-SHA256', 'id-ecPublicKey', 'prime256v1', 'Extension Request', '1.3.6.1.5.5.7.8.4', 'serialNumber']) assert.match(parsed.stdout, new RegExp(expected), expected);
  });
});

describe('EST refusals write nothing', () => {
  const csrBody = async (name: string, eui64: string) => readFileSync((await strongswanCsr(name, eui64)).csr).toString('base64');

  it("another manufacturer's device (outside its EUI-64 ranges): 403 EUI64_OUTSIDE_RANGE", async () => {
    const eui64 = newEui();
    const mine = await estRequest('/.well-known/est/compact-signing/simpleenroll', { body: await csrBody('mine', eui64), contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(mine.status, 200, mine.body);
    const before = await rowsFor(eui64);
    const theirs = await estRequest('/.well-known/est/smart-meter-signing/simpleenroll', { body: await csrBody('theirs', eui64), contentType: 'application/pkcs10', auth: basic(otherFactoryToken) });
    assert.equal(theirs.status, 403);
    assert.equal(JSON.parse(theirs.body).code, 'EUI64_OUTSIDE_RANGE');
    assert.deepEqual(await rowsFor(eui64), before);
  });

  it('a CSR for a device already enrolled (another key): 409 CERTIFICATE_EXISTS; the same CSR again: 200 with the same certificate', async () => {
    const eui64 = newEui();
    const body = await csrBody('first', eui64);
    const first = await estRequest('/.well-known/est/simpleenroll', { body, contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(first.status, 200, first.body);
    assert.equal(first.headers['content-type'], 'application/pkcs7-mime; smime-type=certs-only');
    const again = await estRequest('/.well-known/est/simpleenroll', { body, contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(again.body, first.body, 'idempotent on the CSR');
    const before = await rowsFor(eui64);
    const other = await estRequest('/.well-known/est/simpleenroll', { body: await csrBody('second', eui64), contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(other.status, 409);
    assert.equal(JSON.parse(other.body).code, 'CERTIFICATE_EXISTS');
    assert.deepEqual(await rowsFor(eui64), before);
  });

  it('a wrong label: 404 LABEL_UNKNOWN; a CSR naming no device: 400; a wrong media type: 415', async () => {
    const eui64 = newEui();
    const body = await csrBody('label', eui64);
    const wrong = await estRequest('/.well-known/est/smart-meter-signin/simpleenroll', { body, contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(wrong.status, 404);
    assert.equal(JSON.parse(wrong.body).code, 'LABEL_UNKNOWN');
    const anonymous = await sh(`cd ${dir} && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null -subj /CN=meter -outform DER 2>/dev/null | openssl base64 -A`);
    const noDevice = await estRequest('/.well-known/est/simpleenroll', { body: anonymous.stdout, contentType: 'application/pkcs10', auth: basic(factoryToken) });
    assert.equal(noDevice.status, 400);
    assert.equal(JSON.parse(noDevice.body).code, 'CSR_DEVICE_ID_MISSING');
    const json = await estRequest('/.well-known/est/simpleenroll', { body: JSON.stringify({ csr: body }), contentType: 'application/json', auth: basic(factoryToken) });
    assert.equal(json.status, 415);
    assert.equal(JSON.parse(json.body).code, 'EST_MEDIA_TYPE');
    assert.deepEqual(await rowsFor(eui64), { intents: 0, certificates: 0, devices: 0 });
  });

  it('plain HTTP: 403 EST_TLS_REQUIRED, whatever the credential', async () => {
    const eui64 = newEui();
    const body = await csrBody('plain', eui64);
    for (const authorization of [basic(factoryToken), `Bearer ${factoryToken}`]) {
      const res = await runtime.app.inject({ method: 'POST', url: '/.well-known/est/simpleenroll', headers: { 'content-type': 'application/pkcs10', authorization }, payload: body });
      assert.equal(res.statusCode, 403);
      assert.equal(res.json().code, 'EST_TLS_REQUIRED');
    }
    assert.deepEqual(await rowsFor(eui64), { intents: 0, certificates: 0, devices: 0 });
  });

  it('the standby site: 503 SITE_STANDBY with Retry-After, naming the active site', async () => {
    // Site B's API built in this process on B's database (a hot standby), with A's key store: one process
    // serves one site's HSM, and B's token holds no keys in this test deployment. The refusal comes
    // from the database being in recovery, which is what makes a site a standby.
    const configB = { ...config, site: 'b' as const };
    const poolB = createPool(config.sites.b.databaseUrl, { max: 2, applicationName: 'fleetpki-test' });
    const queue = new ChunkQueue(config.sites.b.redisUrl, config.pgDatabase);
    const issuer = await loadSiteIssuer(configB, poolB, runtime.keyStore);
    const standby = await buildIssuerApi({ config: configB, pool: poolB, ca: issuer.ca, keyStore: runtime.keyStore, queue, chainPem: toPem(issuer.ca.record.certificate) + toPem(issuer.root.certificate), serialPrefix: issuer.serialPrefix, logger: false, tls: readTlsMaterial(config.api.tlsDir) });
    try {
      await standby.listen({ host: '127.0.0.1', port: 0 });
      const eui64 = newEui();
      const res = await estRequest('/.well-known/est/simpleenroll', { body: await csrBody('standby', eui64), contentType: 'application/pkcs10', auth: basic(factoryToken), base: `https://127.0.0.1:${(standby.server.address() as AddressInfo).port}` });
      assert.equal(res.status, 503, res.body);
      assert.equal(res.headers['retry-after'], '10');
      const answer = JSON.parse(res.body) as { code: string; message: string; details: { activeSite: string; activeUrl: string } };
      assert.equal(answer.code, 'SITE_STANDBY');
      assert.equal(answer.details.activeSite, 'a');
      // The active site's URL as the configuration names it (sites.a.api.url, or derived from api.tls).
      assert.equal(answer.details.activeUrl, config.sites.a.apiUrl);
      assert.deepEqual(await rowsFor(eui64), { intents: 0, certificates: 0, devices: 0 });
    } finally {
      await standby.close();
      await queue.close();
      await poolB.end();
    }
  });

  it('no credential: 401; a token of another role: 403', async () => {
    const eui64 = newEui();
    const body = await csrBody('nocred', eui64);
    const none = await estRequest('/.well-known/est/simpleenroll', { body, contentType: 'application/pkcs10' });
    assert.equal(none.status, 401);
    const admin = await estRequest('/.well-known/est/simpleenroll', { body, contentType: 'application/pkcs10', auth: basic(adminToken) });
    assert.equal(admin.status, 403);
    assert.equal(JSON.parse(admin.body).code, 'ROLE_FORBIDDEN');
    assert.deepEqual(await rowsFor(eui64), { intents: 0, certificates: 0, devices: 0 });
  });
});
