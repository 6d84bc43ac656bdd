import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { DeviceKeyService } from '@fleetpki/ca';
import { readPkiMessage } from '@fleetpki/cmp';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { createStatusRuntime, type StatusRuntime } from '@fleetpki/status-responder';
import { findPersonByName, listMasterKeys, type Pool } from '@fleetpki/store';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';
import { approvedRequest } from './support/dual-control.js';

/**
 * CMP (RFC 9483) against OpenSSL's client (`openssl cmp`, 3.0): ir with a factory's MAC reference,
 * p10cr, cr signed with a factory's client certificate, kur with the device's certificate, rr, genm;
 * certConf, replays and tampering; a fuzz pass. The issuer API runs here, over plain HTTP (CMP messages
 * carry their own protection).
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let status: StatusRuntime;
let port: number;
let statusUrl: string;
let adminToken: string;
let reference: string;
let secret: string;
let factoryCert: { cert: string; key: string };
let officerCert: { cert: string; key: string };
const MAKER = 'cmp-maker';
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-cmp-'));
const file = (name: string) => join(dir, name);
/** A device id of the factory's manufacturer (inside its registered EUI-64 block). */
const newEui = () => syntheticEui64(MAKER);
const CONFIRM_WAIT_S = 2;
/** The server's CMP settings: one test turns implicit confirmation on (the server reads them per request). */
const cmpConfig: { implicitConfirm: boolean; confirmWaitSeconds: number; maxClockSkewSeconds: number } = { implicitConfirm: false, confirmWaitSeconds: CONFIRM_WAIT_S, maxClockSkewSeconds: 600 };

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** `openssl cmp` against this server; the label picks the profile (compact-signing unless given). */
function cmp(args: readonly string[], label = 'compact-signing'): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('openssl', ['cmp', '-server', `127.0.0.1:${port}`, '-path', `.well-known/cmp/p/${label}`, '-msg_timeout', '30', '-total_timeout', '60', ...args]);
}

const macArgs = () => ['-ref', reference, '-secret', `pass:${secret}`];
const signedArgs = (cert: string, key: string) => ['-cert', cert, '-key', key, '-trusted', ca.rootPem];

async function newKey(name: string): Promise<string> {
  const path = file(`${name}.key`);
  assert.equal((await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path])).code, 0);
  return path;
}

async function verify(pem: string): Promise<string> {
  return (await run('openssl', ['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, pem])).stdout.trim();
}

async function serialOf(pem: string): Promise<string> {
  return (await run('openssl', ['x509', '-in', pem, '-noout', '-serial'])).stdout.trim().replace('serial=', '').toLowerCase().replace(/^(00)+(?=..)/, '');
}

async function transaction(serial: string): Promise<{ status: string; body_type: string } | undefined> {
  const { rows } = await pool.query<{ status: string; body_type: string }>(`SELECT status, body_type FROM cmp_transactions WHERE certificate_serial = $1`, [Buffer.from(serial, 'hex')]);
  return rows[0];
}

async function auditActions(subject: string): Promise<string[]> {
  const { rows } = await pool.query<{ action: string }>('SELECT action FROM audit_events WHERE subject = $1 ORDER BY seq', [subject]);
  return rows.map((r) => r.action);
}

/** POSTs raw bytes to the CMP endpoint. */
async function post(body: Buffer, contentType = 'application/pkixcmp'): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${port}/.well-known/cmp`, { method: 'POST', headers: { 'content-type': contentType }, body, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

/** The failInfo bit numbers and text of a CMP error answer (RFC 4210 5.2.3: 1 badMessageCheck, 9 badPOP, 21 transactionIdInUse...). */
function errorOf(der: Buffer): { failInfo: readonly number[]; text: string } {
  const message = readPkiMessage(der);
  assert.equal(message.body.type, 'error', `an error answer, not ${message.body.type}`);
  const body = message.body as { failInfo: readonly number[]; texts: readonly string[] };
  return { failInfo: body.failInfo, text: body.texts.join(' ') };
}

async function counts(): Promise<{ transactions: number; certificates: number; audit: number }> {
  const { rows } = await pool.query<{ transactions: number; certificates: number; audit: number }>(
    'SELECT (SELECT count(*)::int FROM cmp_transactions) AS transactions, (SELECT count(*)::int FROM certificates) AS certificates, (SELECT count(*)::int FROM audit_events) AS audit',
  );
  return rows[0]!;
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  adminToken = await createToken(pool, 'administrator', null, 'cmp-admin');
  await createToken(pool, 'factory', MAKER, 'cmp-factory-line');
  // A revocation threshold of one certificate: an officer's second rr within the window needs a second person.
  runtime = await createIssuerRuntime({ ...config, site: 'a', intentTimeoutSeconds: 4, cmp: cmpConfig, dualControl: { ...config.dualControl, revocationThreshold: 1 } }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  port = (runtime.app.server.address() as AddressInfo).port;
  status = await createStatusRuntime({ ...config, site: 'a' }, { logger: false, tickEveryMs: 200 });
  await status.app.listen({ host: '127.0.0.1', port: 0 });
  statusUrl = `http://127.0.0.1:${(status.app.server.address() as AddressInfo).port}`;
  // CMP secrets are derived from the device MAC master key.
  if (!(await listMasterKeys(pool)).some((m) => m.role === 'mac' && m.status === 'active')) await new DeviceKeyService(pool, runtime.keyStore, 'a').createMasterKey('mac', 'test');
  reference = `cmp-line-${randomBytes(3).toString('hex')}`;
  const issued = await fetch(`http://127.0.0.1:${port}/v1/cmp/secrets`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ reference, manufacturer: MAKER }) });
  assert.equal(issued.status, 201, await issued.clone().text());
  secret = ((await issued.json()) as { secret: string }).secret;
  // The factory's client certificate (organisation CA), issued as administrators issue one.
  const out = file('factory');
  const made = await cli(['tls', 'client', '--name', 'cmp-factory-line', '--out', out, '--token-file', writeCaFile(ca, 'cmp-admin.token', adminToken)]);
  assert.equal(made.code, 0, made.stderr);
  factoryCert = { cert: join(out, 'client.pem'), key: join(out, 'client.key') };
  assert.ok(await findPersonByName(pool, 'cmp-factory-line'));
  // A revocation officer's client certificate: a privileged person's, so two administrators approve it.
  await createToken(pool, 'revocation-officer', null, 'cmp-officer');
  const officer = (await findPersonByName(pool, 'cmp-officer'))!;
  const approval = await approvedRequest(pool, ca, 'credential.create', 'administrator', { person: officer.id, name: 'cmp-officer' });
  const officerOut = file('officer');
  const officerMade = await cli(['tls', 'client', '--name', 'cmp-officer', '--out', officerOut, '--token-file', approval.tokenFile, '--approval', approval.id]);
  assert.equal(officerMade.code, 0, officerMade.stderr);
  officerCert = { cert: join(officerOut, 'client.pem'), key: join(officerOut, 'client.key') };
});

after(async () => {
  await status?.close();
  await runtime?.close();
  await pool?.end();
});

describe('CMP with openssl cmp', () => {
  let device: { eui64: string; key: string; cert: string };

  it('ir with the factory MAC (first contact): a certificate that verifies, confirmed by certConf, audited', async () => {
    const eui64 = newEui();
    const key = await newKey('ir');
    const cert = file('ir.pem');
    // The smart-meter profile: its certificates name a subject and a key identifier, which OpenSSL needs
    // to protect the kur and rr below with them (compact certificates have neither).
    const out = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${eui64}`, '-certout', cert, '-cacertsout', file('capubs.pem')], 'smart-meter-signing');
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await verify(cert), `${cert}: OK`);
    assert.equal(readFileSync(file('capubs.pem'), 'utf8'), readFileSync(ca.rootPem, 'utf8'), 'caPubs: the root, for a client that trusted nothing yet');
    const serial = await serialOf(cert);
    assert.deepEqual(await transaction(serial), { status: 'confirmed', body_type: 'ir' }, 'implicit confirmation is off: the certConf confirmed it');
    const actions = await auditActions(serial);
    assert.ok(actions.includes('issuance.certificate') && actions.includes('cmp.certificate.confirmed'), actions.join(', '));
    const { rows } = await pool.query<{ actor: string }>(`SELECT actor FROM audit_events WHERE subject = $1 AND action = 'issuance.certificate'`, [serial]);
    assert.equal(rows[0]!.actor, `factory:${MAKER} via cmp-reference:${reference}`);
    device = { eui64, key, cert };
  });

  it('p10cr with the MAC: the CSR names the device', async () => {
    const eui64 = newEui();
    const key = await newKey('p10');
    assert.equal((await run('openssl', ['req', '-new', '-key', key, '-subj', `/serialNumber=${eui64}`, '-out', file('p10.csr'), '-outform', 'DER'])).code, 0);
    const out = await cmp(['-cmd', 'p10cr', ...macArgs(), '-csr', file('p10.csr'), '-certout', file('p10.pem')]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await verify(file('p10.pem')), `${file('p10.pem')}: OK`);
    const { rows } = await pool.query<{ eui64: Buffer }>('SELECT eui64 FROM certificates WHERE serial = $1', [Buffer.from(await serialOf(file('p10.pem')), 'hex')]);
    assert.equal(rows[0]?.eui64.toString('hex').toUpperCase(), eui64);
  });

  it("cr signed with the factory's client certificate; the answer is signed by the site's CMP key (checked by openssl against the root)", async () => {
    const eui64 = newEui();
    const key = await newKey('cr');
    const out = await cmp(['-cmd', 'cr', ...signedArgs(factoryCert.cert, factoryCert.key), '-newkey', key, '-subject', `/serialNumber=${eui64}`, '-certout', file('cr.pem')], 'smart-meter-signing');
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await verify(file('cr.pem')), `${file('cr.pem')}: OK`);
    const serial = await serialOf(file('cr.pem'));
    const { rows } = await pool.query<{ actor: string; profile: string }>(`SELECT a.actor, c.profile FROM audit_events a JOIN certificates c ON encode(c.serial, 'hex') = a.subject WHERE a.subject = $1 AND a.action = 'issuance.certificate'`, [serial]);
    assert.match(rows[0]!.actor, /^person:cmp-factory-line via cert:/);
    assert.equal(rows[0]!.profile, 'smart-meter');
  });

  it('kur with the old certificate and key: a new certificate, the old one superseded', async () => {
    assert.ok(device, 'the ir test ran first');
    const newKeyPath = await newKey('kur');
    const out = await cmp(['-cmd', 'kur', ...signedArgs(device.cert, device.key), '-newkey', newKeyPath, '-certout', file('kur.pem')], 'smart-meter-signing');
    assert.equal(out.code, 0, out.stderr + out.stdout);
    assert.equal(await verify(file('kur.pem')), `${file('kur.pem')}: OK`);
    const [oldSerial, newSerial] = [await serialOf(device.cert), await serialOf(file('kur.pem'))];
    assert.notEqual(oldSerial, newSerial);
    assert.ok((await auditActions(oldSerial)).includes('certificate.superseded'));
    assert.deepEqual(await transaction(newSerial), { status: 'confirmed', body_type: 'kur' });
    device = { ...device, key: newKeyPath, cert: file('kur.pem') };
  });

  it('rr by the device itself (keyCompromise): openssl ocsp then says revoked', async () => {
    assert.ok(device, 'the kur test ran first');
    const out = await cmp(['-cmd', 'rr', ...signedArgs(device.cert, device.key), '-oldcert', device.cert, '-revreason', '1']);
    assert.equal(out.code, 0, out.stderr + out.stdout);
    const serial = await serialOf(device.cert);
    const answer = await waitFor(
      'OCSP says revoked',
      async () => {
        const r = await run('openssl', ['ocsp', '-issuer', ca.issuingPem, '-cert', device.cert, '-url', `${statusUrl}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
        return /: revoked/.test(r.stdout) ? r.stdout + r.stderr : undefined;
      },
      20_000,
      300,
    );
    assert.match(answer, /Reason: keyCompromise/);
    assert.match(answer, /Response verify OK/);
    const audit = await pool.query<{ actor: string }>(`SELECT actor FROM audit_events WHERE action = 'revocation.request' AND details->'serials' ? $1`, [serial]);
    assert.equal(audit.rows[0]?.actor, `device:${device.eui64}`, 'audited with the device as the one who asked');
    // Again: already revoked, a CMP error naming it.
    const again = await cmp(['-cmd', 'rr', ...signedArgs(device.cert, device.key), '-oldcert', device.cert, '-revreason', '1']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr + again.stdout, /certRevoked/);
  });

  it("rr by a revocation officer's client certificate, under the dual-control threshold: past it, notAuthorized and nothing revoked", async () => {
    const enrol = async (name: string) => {
      const key = await newKey(name);
      const out = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${newEui()}`, '-certout', file(`${name}.pem`)]);
      assert.equal(out.code, 0, out.stderr);
      return file(`${name}.pem`);
    };
    const [first, second] = [await enrol('officer-1'), await enrol('officer-2')];
    const revoked = await cmp(['-cmd', 'rr', ...signedArgs(officerCert.cert, officerCert.key), '-oldcert', first, '-revreason', '4']);
    assert.equal(revoked.code, 0, revoked.stderr + revoked.stdout);
    assert.equal((await pool.query('SELECT reason FROM revocations WHERE serial = $1', [Buffer.from(await serialOf(first), 'hex')])).rows[0]?.reason, 4);
    const refused = await cmp(['-cmd', 'rr', ...signedArgs(officerCert.cert, officerCert.key), '-oldcert', second, '-revreason', '4']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr + refused.stdout, /notAuthorized[\s\S]*DUAL_CONTROL_THRESHOLD/);
    assert.equal((await pool.query('SELECT 1 FROM revocations WHERE serial = $1', [Buffer.from(await serialOf(second), 'hex')])).rowCount, 0);
    // A factory may not revoke over CMP (nor over the API).
    const factory = await cmp(['-cmd', 'rr', ...signedArgs(factoryCert.cert, factoryCert.key), '-oldcert', second, '-revreason', '4']);
    assert.match(factory.stderr + factory.stdout, /notAuthorized/);
  });

  it('fleetpki cmp secret issues a reference; issuing it again replaces the secret (the old one gets badMessageCheck)', async () => {
    const adminFile = writeCaFile(ca, 'cmp-admin-cli.token', adminToken);
    const issue = async () => {
      const r = await cli(['cmp', 'secret', '--reference', 'cli-line', '--manufacturer', MAKER, '--token-file', adminFile]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n')[1]!.trim();
    };
    const first = await issue();
    const genm = (s: string) => cmp(['-cmd', 'genm', '-ref', 'cli-line', '-secret', `pass:${s}`, '-infotype', 'signKeyPairTypes']);
    assert.equal((await genm(first)).code, 0);
    const second = await issue();
    assert.notEqual(second, first);
    assert.equal((await genm(second)).code, 0);
    // The error answering a MAC that does not verify is signed by the site's CMP key: with the root, openssl reads it.
    const old = await cmp(['-cmd', 'genm', '-ref', 'cli-line', '-secret', `pass:${first}`, '-infotype', 'signKeyPairTypes', '-trusted', ca.rootPem]);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr + old.stdout, /badMessageCheck/);
    const refused = await cli(['cmp', 'secret', '--reference', 'cli-line', '--manufacturer', 'cmp-nobody', '--token-file', adminFile]);
    assert.match(refused.stderr, /MANUFACTURER_NOT_FOUND|CMP_REFERENCE_TAKEN/);
  });

  it('genm: caCerts, certReqTemplate and signKeyPairTypes', async () => {
    for (const infotype of ['caCerts', 'certReqTemplate', 'signKeyPairTypes']) {
      const rsp = file(`genp-${infotype}.der`);
      const out = await cmp(['-cmd', 'genm', ...macArgs(), '-infotype', infotype, '-rspout', rsp]);
      assert.equal(out.code, 0, `${infotype}: ${out.stderr}`);
      const der = readFileSync(rsp);
      assert.equal(readPkiMessage(der).body.type, 'genp');
      if (infotype === 'caCerts') {
        const issuing = Buffer.from(readFileSync(ca.issuingPem, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
        assert.ok(der.includes(issuing), 'the issuing CA certificate is in the genp');
      }
    }
  });

  it('a certificate without its certConf waits, then is marked unconfirmed by the reconciler (audited; it stays valid)', async () => {
    const eui64 = newEui();
    const key = await newKey('noconf');
    const out = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${eui64}`, '-certout', file('noconf.pem'), '-disable_confirm']);
    assert.equal(out.code, 0, out.stderr);
    const serial = await serialOf(file('noconf.pem'));
    assert.equal((await transaction(serial))?.status, 'waiting');
    await waitFor('unconfirmed', async () => ((await transaction(serial))?.status === 'unconfirmed' ? true : undefined), 20_000, 200);
    assert.ok((await auditActions(serial)).includes('cmp.certificate.unconfirmed'));
    assert.equal(await verify(file('noconf.pem')), `${file('noconf.pem')}: OK`);
  });

  it('implicit confirmation: asked for, it is granted only where the CA allows it (FLEETPKI_CMP_IMPLICIT_CONFIRM=on)', async () => {
    const enrol = async (name: string) => {
      const out = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', await newKey(name), '-subject', `/serialNumber=${newEui()}`, '-certout', file(`${name}.pem`), '-implicit_confirm', '-reqout', `${file(`${name}-1.der`)},${file(`${name}-2.der`)}`]);
      assert.equal(out.code, 0, out.stderr);
      return transaction(await serialOf(file(`${name}.pem`)));
    };
    assert.equal((await enrol('implicit-off'))?.status, 'confirmed', 'off: the client was not granted it and confirmed by certConf');
    assert.equal(readPkiMessage(readFileSync(file('implicit-off-2.der'))).body.type, 'certConf');
    cmpConfig.implicitConfirm = true;
    try {
      assert.equal((await enrol('implicit-on'))?.status, 'confirmed', 'on: confirmed without a certConf');
      assert.throws(() => readFileSync(file('implicit-on-2.der')), 'no second message was sent');
    } finally {
      cmpConfig.implicitConfirm = false;
    }
  });

  it('a certificate the client refuses in its certConf is revoked', async () => {
    const eui64 = newEui();
    const key = await newKey('refused');
    // The client checks the new certificate against a trust store that cannot verify it, and rejects it.
    const wrongTrust = file('wrong-root.pem');
    assert.equal((await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('wrong.key'), '-subj', '/CN=not the root', '-out', wrongTrust, '-days', '2'])).code, 0);
    const out = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${eui64}`, '-certout', file('refused.pem'), '-out_trusted', wrongTrust]);
    assert.notEqual(out.code, 0, 'the client refused the certificate');
    const { rows } = await pool.query<{ serial: Buffer; status: string }>(`SELECT t.certificate_serial AS serial, t.status FROM cmp_transactions t JOIN certificates c ON c.serial = t.certificate_serial WHERE c.eui64 = $1`, [Buffer.from(eui64, 'hex')]);
    assert.equal(rows[0]?.status, 'rejected', out.stderr);
    assert.equal((await pool.query('SELECT reason FROM revocations WHERE serial = $1', [rows[0]!.serial])).rows[0]?.reason, 5, 'revoked, cessationOfOperation');
  });
});

describe('CMP: bad protection, replays, fuzz', () => {
  let captured: Buffer;

  before(async () => {
    // A real request of this factory, captured as openssl sends it (-reqout), and sent once.
    const key = await newKey('golden');
    const out = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${newEui()}`, '-certout', file('golden.pem'), '-reqout', `${file('golden-ir.der')},${file('golden-certconf.der')}`]);
    assert.equal(out.code, 0, out.stderr);
    captured = readFileSync(file('golden-ir.der'));
  });

  it('a replayed request (same transactionID and nonce) is refused: transactionIdInUse, nothing written', async () => {
    const before = await counts();
    const answer = await post(captured);
    assert.equal(answer.status, 200);
    const error = errorOf(answer.body);
    assert.deepEqual(error.failInfo, [21], error.text);
    assert.deepEqual(await counts(), before);
  });

  it('a flipped protection bit, another sender KID, an unknown reference: badMessageCheck, nothing written', async () => {
    const before = await counts();
    const message = readPkiMessage(captured);
    const flipped = Buffer.from(captured);
    const at = flipped.lastIndexOf(message.protection!);
    flipped[at + 3]! ^= 0x01;
    const otherKid = Buffer.from(captured);
    const kidAt = otherKid.indexOf(Buffer.from(reference));
    otherKid[kidAt]! ^= 0x20; // a letter in another case: a reference that does not exist
    for (const [what, bytes] of [['protection', flipped], ['sender KID', otherKid]] as const) {
      const answer = await post(bytes);
      assert.equal(answer.status, 200, what);
      assert.deepEqual(errorOf(answer.body).failInfo, [1], `${what}: badMessageCheck`);
    }
    // The error to a request that cannot be trusted is signed by the site's CMP key.
    const signed = readPkiMessage((await post(flipped)).body);
    assert.equal(signed.header.protectionAlg?.oid, '1.2.840.10045.4.3.2');
    assert.deepEqual(await counts(), before);
  });

  it('not CMP at all: 415 for another media type; garbage is a CMP error (badDataFormat), never a 5xx', async () => {
    assert.equal((await post(Buffer.from('{}'), 'application/json')).status, 415);
    const garbage = await post(Buffer.from('not a PKIMessage'));
    assert.equal(garbage.status, 200);
    assert.deepEqual(errorOf(garbage.body).failInfo, [5]);
  });

  it('fuzz: 1,500 mutated and truncated requests get CMP errors or a 4xx, never a 5xx, and write nothing', async () => {
    const before = await counts();
    const statuses = new Map<number, number>();
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 1_500; i++) {
      let bytes = Buffer.from(captured);
      const kind = random(4);
      if (kind === 0) bytes = bytes.subarray(0, random(bytes.length));
      else if (kind === 1) for (let k = 0; k <= random(4); k++) bytes[random(bytes.length)] = random(256);
      else if (kind === 2) bytes = Buffer.concat([bytes.subarray(0, random(bytes.length)), randomBytes(random(40)), bytes.subarray(random(bytes.length))]);
      else bytes[random(bytes.length)]! ^= 1 << random(8);
      const answer = await post(bytes);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      assert.ok(answer.status < 500, `mutation ${i}: ${answer.status} ${answer.body.toString('utf8').slice(0, 200)}`);
      if (answer.status === 200) assert.equal(readPkiMessage(answer.body).body.type, 'error');
    }
    assert.deepEqual(await counts(), before, 'nothing written');
    assert.ok((statuses.get(200) ?? 0) > 1_000, `mostly CMP error answers: ${JSON.stringify([...statuses])}`);
  });

  it('the certConf of a finished transaction, replayed, is refused', async () => {
    const answer = await post(readFileSync(file('golden-certconf.der')));
    assert.equal(answer.status, 200);
    const error = errorOf(answer.body);
    assert.ok(error.text.includes('not waiting'), error.text);
  });
});
