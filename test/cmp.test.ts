import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { DeviceKeyService, loadSiteIssuer } from '@fleetpki/ca';
import { MAX_PBM_ITERATIONS, derInteger, readPkiMessage } from '@fleetpki/cmp';
import { buildIssuerApi, createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { ChunkQueue } from '@fleetpki/queue';
import { toPem } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { findPersonByName, listMasterKeys, type Pool } from '@fleetpki/store';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';
import { approvedRequest } from './support/dual-control.js';
import { STATUS_JOBS } from '@fleetpki/daemons';
import { createStatusSite, type StatusSiteRuntime } from './support/status.js';

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
let status: StatusSiteRuntime;
let port: number;
let statusUrl: string;
let adminToken: string;
let factoryToken: string;
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
const cmpConfig: FleetConfig['cmp'] & { implicitConfirm: boolean } = {
  implicitConfirm: false,
  confirmWaitSeconds: CONFIRM_WAIT_S,
  maxClockSkewSeconds: 600,
  // This server takes the fuzz pass's 1,500 bad requests from one address; the budget has a server of its own below.
  authBudget: { burst: 100_000, refillPerSecond: 100_000 },
  pbmThreads: 1,
};

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

/** What a request could have written; failed authentications are audited (auth.failed) and counted apart. */
async function counts(): Promise<{ transactions: number; certificates: number; audit: number }> {
  const { rows } = await pool.query<{ transactions: number; certificates: number; audit: number }>(
    `SELECT (SELECT count(*)::int FROM cmp_transactions) AS transactions, (SELECT count(*)::int FROM certificates) AS certificates, (SELECT count(*)::int FROM audit_events WHERE action <> 'auth.failed') AS audit`,
  );
  return rows[0]!;
}

async function failedCmpAuthentications(): Promise<number> {
  return (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'auth.failed' AND details->>'code' = 'CMP_PROTECTION_FAILED'`)).rows[0]!.n;
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  adminToken = await createToken(pool, 'administrator', null, 'cmp-admin');
  factoryToken = await createToken(pool, 'factory', MAKER, 'cmp-factory-line');
  // A revocation threshold of one certificate: an officer's second rr within the window needs a second person.
  // compact-kex is held for an administrator's approval (FLEETPKI_APPROVAL_LABELS), whatever the protocol.
  runtime = await createIssuerRuntime(
    { ...config, site: 'a', intentTimeoutSeconds: 4, cmp: cmpConfig, api: { ...config.api, failedAuthPerMinute: 100_000 }, dualControl: { ...config.dualControl, revocationThreshold: 1 }, enrolmentHolds: { labels: ['compact-kex'], retryAfterSeconds: 1 } },
    { logger: false, hsmSessions: 1, poolSize: 4 },
  );
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  port = (runtime.app.server.address() as AddressInfo).port;
  // The status side's daemons and the CMP confirm-expiry reconciler (the daemons run it, not the issuer API).
  status = await createStatusSite({ ...config, site: 'a', cmp: cmpConfig }, { logger: false, tickEveryMs: 200, daemons: [...STATUS_JOBS, 'cmp-confirm-expiry'] });
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

  it('a key-agreement certificate signs neither kur nor rr: notAuthorized, nothing issued or revoked', async () => {
    const eui64 = newEui();
    const key = await newKey('kex');
    const kex = file('kex.pem');
    const enrolled = await cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${eui64}`, '-certout', kex], 'smart-meter-kex');
    assert.equal(enrolled.code, 0, enrolled.stderr);
    assert.match((await run('openssl', ['x509', '-in', kex, '-noout', '-ext', 'keyUsage'])).stdout, /Key Agreement/);
    const serial = await serialOf(kex);
    const before = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM certificates WHERE eui64 = $1', [Buffer.from(eui64, 'hex')]);
    // The key-agreement key is for ECDH: a message it signs proves nothing about the device's intent.
    const kur = await cmp(['-cmd', 'kur', ...signedArgs(kex, key), '-newkey', await newKey('kex-new'), '-certout', file('kex-new.pem')], 'smart-meter-kex');
    assert.notEqual(kur.code, 0, 'kur signed by a key-agreement certificate is refused');
    assert.match(kur.stderr + kur.stdout, /notAuthorized/);
    const rr = await cmp(['-cmd', 'rr', ...signedArgs(kex, key), '-oldcert', kex, '-revreason', '1']);
    assert.notEqual(rr.code, 0, 'rr signed by a key-agreement certificate is refused');
    assert.match(rr.stderr + rr.stdout, /notAuthorized/);
    assert.equal((await pool.query('SELECT 1 FROM revocations WHERE serial = $1', [Buffer.from(serial, 'hex')])).rowCount, 0, 'not revoked');
    const after = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM certificates WHERE eui64 = $1', [Buffer.from(eui64, 'hex')]);
    assert.equal(after.rows[0]!.n, before.rows[0]!.n, 'no new certificate');
  });

  it('a held label holds CMP as it holds EST: the ir is answered systemUnavail naming the request, nothing issued; once approved, the same key enrols', async () => {
    const eui64 = newEui();
    const key = await newKey('held-cmp');
    const ir = () => cmp(['-cmd', 'ir', ...macArgs(), '-newkey', key, '-subject', `/serialNumber=${eui64}`, '-certout', file('held-cmp.pem')], 'compact-kex');
    const first = await ir();
    assert.notEqual(first.code, 0, 'held, not issued at once');
    assert.match(first.stderr + first.stdout, /systemUnavail[\s\S]*ENROLMENT_APPROVAL_PENDING/);
    assert.equal((await pool.query('SELECT 1 FROM certificates WHERE eui64 = $1', [Buffer.from(eui64, 'hex')])).rowCount, 0, 'nothing issued while it waits');
    const admin = { authorization: `Bearer ${adminToken}` };
    const listed = (await (await fetch(`http://127.0.0.1:${port}/v1/est/requests`, { headers: admin })).json()) as { id: string; eui64: string; label: string; protocol: string }[];
    const held = listed.find((r) => r.eui64 === eui64);
    assert.deepEqual(held && [held.label, held.protocol], ['compact-kex', 'cmp']);
    assert.equal((await fetch(`http://127.0.0.1:${port}/v1/est/requests/${held!.id}/approve`, { method: 'POST', headers: admin })).status, 200);
    const second = await ir();
    assert.equal(second.code, 0, second.stderr + second.stdout);
    assert.equal(await verify(file('held-cmp.pem')), `${file('held-cmp.pem')}: OK`);
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

  it("a p10cr replaying an enrolled device's CSR gets its certificate back, and a rejecting certConf does not revoke it (only a certificate issued in that transaction)", async () => {
    // The meter enrols through the JSON API, as an end-of-line tester would.
    const eui64 = newEui();
    const key = await newKey('replayed');
    const csr = file('replayed.csr');
    assert.equal((await run('openssl', ['req', '-new', '-key', key, '-subj', `/serialNumber=${eui64}`, '-out', csr, '-outform', 'DER'])).code, 0);
    const enrolled = await fetch(`http://127.0.0.1:${port}/v1/enrolments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ eui64, keyRole: 'digitalSignature', profile: 'smart-meter-compact', csr: readFileSync(csr).toString('base64') }),
    });
    assert.equal(enrolled.status, 201, await enrolled.clone().text());
    const serial = ((await enrolled.json()) as { serial: string }).serial.toLowerCase();
    // The factory replays the CSR over CMP and refuses what comes back (a trust store that cannot verify it).
    const wrongTrust = file('replayed-wrong-root.pem');
    assert.equal((await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('replayed-wrong.key'), '-subj', '/CN=not the root', '-out', wrongTrust, '-days', '2'])).code, 0);
    const out = await cmp(['-cmd', 'p10cr', ...macArgs(), '-csr', csr, '-certout', file('replayed.pem'), '-out_trusted', wrongTrust]);
    assert.notEqual(out.code, 0, 'the client refused the certificate');
    const { rows } = await pool.query<{ status: string }>(`SELECT status FROM cmp_transactions WHERE certificate_serial = $1 AND body_type = 'p10cr'`, [Buffer.from(serial, 'hex')]);
    assert.deepEqual(rows.map((r) => r.status), ['rejected'], `the p10cr answered the existing certificate and its certConf rejected it: ${out.stderr}`);
    assert.equal((await pool.query('SELECT reason FROM revocations WHERE serial = $1', [Buffer.from(serial, 'hex')])).rowCount, 0, 'not revoked: the rejection is of a certificate issued before this transaction');
    const audit = await pool.query<{ details: { revoked?: boolean } }>(`SELECT details FROM audit_events WHERE subject = $1 AND action = 'cmp.certificate.rejected'`, [serial]);
    assert.equal(audit.rows[0]?.details.revoked, false, 'the rejection is audited, saying nothing was revoked');
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

  it('a flipped protection bit, another sender KID, an unknown reference: badMessageCheck, nothing written but the failed authentications', async () => {
    const before = await counts();
    const failedBefore = await failedCmpAuthentications();
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
    assert.equal((await failedCmpAuthentications()) - failedBefore, 3, 'each audited as a failed authentication');
  });

  it('not CMP at all: 415 for another media type; garbage is a CMP error (badDataFormat), never a 5xx', async () => {
    assert.equal((await post(Buffer.from('{}'), 'application/json')).status, 415);
    const garbage = await post(Buffer.from('not a PKIMessage'));
    assert.equal(garbage.status, 200);
    assert.deepEqual(errorOf(garbage.body).failInfo, [5]);
  });

  it('fuzz: 1,500 mutated and truncated requests get CMP errors or a 4xx, never a 5xx, and write nothing but the failed authentications', async () => {
    const before = await counts();
    const failedBefore = await failedCmpAuthentications();
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
    assert.ok((await failedCmpAuthentications()) - failedBefore > 1_000, 'audited as failed authentications');
  });

  it('the certConf of a finished transaction, replayed, is refused', async () => {
    const answer = await post(readFileSync(file('golden-certconf.der')));
    assert.equal(answer.status, 200);
    const error = errorOf(answer.body);
    assert.ok(error.text.includes('not waiting'), error.text);
  });
});

describe('CMP before authentication: a per-address budget, failures counted with the others', () => {
  let limited: Awaited<ReturnType<typeof buildIssuerApi>>;
  let limitedQueue: ChunkQueue;
  let limitedPort: number;
  let garbage: Buffer;
  const BURST = 3;
  const FAILURES_PER_MINUTE = 4;

  before(async () => {
    // A request with a real reference and a wrong secret, as anyone who saw the reference in clear can
    // send, asking for as many PBM iterations as are accepted: each costs a secret derived in the HSM,
    // the iterations and an HSM-signed error.
    const out = await cmp(['-cmd', 'genm', '-ref', reference, '-secret', 'pass:not-the-secret', '-infotype', 'signKeyPairTypes', '-reqout', file('garbage-genm.der')]);
    assert.notEqual(out.code, 0);
    garbage = readFileSync(file('garbage-genm.der'));
    const count = garbage.indexOf(Buffer.from('020201f4', 'hex'));
    assert.ok(count > 0, 'openssl asked for 500 iterations');
    derInteger(MAX_PBM_ITERATIONS).copy(garbage, count);
    // A second API on the same database and HSM session pool, with a small budget.
    const limitedConfig = { ...config, site: 'a' as const, cmp: { ...cmpConfig, authBudget: { burst: BURST, refillPerSecond: 0.001 } }, api: { ...config.api, failedAuthPerMinute: FAILURES_PER_MINUTE } };
    const issuer = await loadSiteIssuer(limitedConfig, runtime.pool, runtime.keyStore);
    limitedQueue = new ChunkQueue(config.sites.a.redisUrl, config.pgDatabase);
    limited = await buildIssuerApi({ config: limitedConfig, pool: runtime.pool, ca: issuer.ca, keyStore: runtime.keyStore, queue: limitedQueue, chainPem: toPem(issuer.ca.record.certificate) + toPem(issuer.root.certificate), serialPrefix: issuer.serialPrefix, logger: false });
    await limited.listen({ host: '127.0.0.1', port: 0 });
    limitedPort = (limited.server.address() as AddressInfo).port;
  });

  after(async () => {
    await limited?.close();
    await limitedQueue?.close();
  });

  const postLimited = async (body: Buffer) => {
    const res = await fetch(`http://127.0.0.1:${limitedPort}/.well-known/cmp`, { method: 'POST', headers: { 'content-type': 'application/pkixcmp' }, body, signal: AbortSignal.timeout(30_000) });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: Buffer.from(await res.arrayBuffer()) };
  };
  it('honest requests spend nothing; garbage past the budget gets a plain 429 (nothing signed), each failure is audited, and the failures count against the address as failed token authentications do', async () => {
    // More honest (authenticated) requests than the budget holds: each gives its place back.
    for (let i = 0; i < BURST + 2; i++) {
      const honest = await run('openssl', ['cmp', '-server', `127.0.0.1:${limitedPort}`, '-path', '.well-known/cmp', '-cmd', 'genm', ...macArgs(), '-infotype', 'signKeyPairTypes', '-msg_timeout', '30']);
      assert.equal(honest.code, 0, honest.stderr);
    }
    const audited = await failedCmpAuthentications();
    for (let i = 0; i < BURST; i++) {
      const answer = await postLimited(garbage);
      assert.equal(answer.status, 200, `within the budget: a CMP error (${i})`);
      const error = readPkiMessage(answer.body);
      assert.equal(error.body.type, 'error');
      assert.equal(error.header.protectionAlg?.oid, '1.2.840.10045.4.3.2', 'signed by the CMP key, so the client can trust it');
    }
    const refused = await postLimited(garbage);
    assert.equal(refused.status, 429, `past the budget: ${refused.status} ${refused.body.toString('utf8').slice(0, 200)}`);
    assert.equal((JSON.parse(refused.body.toString('utf8')) as { code: string }).code, 'CMP_RATE_LIMITED', 'a plain JSON refusal: no PKIMessage, nothing derived or signed');
    assert.ok(Number(refused.retryAfter) >= 1);
    assert.equal((await failedCmpAuthentications()) - audited, BURST, 'each failed CMP authentication is audited (auth.failed), the refused one is not');
    // The address has 3 failed CMP authentications; a bad token makes it 4, the limit: now even a good
    // token from this address is refused, as after four bad tokens.
    const api = (token: string) => fetch(`http://127.0.0.1:${limitedPort}/v1/est/requests`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await api('not-a-token')).status, 401);
    const good = await api(adminToken);
    assert.equal(good.status, 429, 'the CMP failures counted with the token failure');
    assert.equal(((await good.json()) as { code: string }).code, 'AUTH_RATE_LIMITED');
    const cmpAgain = await postLimited(garbage);
    assert.equal(cmpAgain.status, 429);
    assert.equal((JSON.parse(cmpAgain.body.toString('utf8')) as { code: string }).code, 'AUTH_RATE_LIMITED');
  });
});
