import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildCertId, buildOcspRequest, crlShardOf } from '@fleetpki/ca';
import { FleetApiClient, revokeUnderDualControl } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, generatedEui64, readRevocationList, syntheticEui64, syntheticRunPrefix } from '@fleetpki/manifest';
import { createStatusRuntime } from '@fleetpki/status-responder';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys, ocspIssuerHashes, parseCaCertificate, readCrlSerials, toPem } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { createToken, ensureCa, writeCaFile, openssl, opensslAsync, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';
import { createStatusSite, type StatusSiteRuntime } from './support/status.js';

let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let issuer: IssuerRuntime;
let status: StatusSiteRuntime;
let factory: FleetApiClient;
let officer: FleetApiClient;
let secondOfficer: FleetApiClient;
let factoryToken: string;
let officerToken: string;
let statusUrl: string;
let worker: ChildProcess | undefined;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  issuer = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 2, poolSize: 6 });
  await issuer.app.listen({ host: '127.0.0.1', port: 0 });
  const apiUrl = `http://127.0.0.1:${(issuer.app.server.address() as AddressInfo).port}`;
  factoryToken = await createToken(pool, 'factory', 'revocation-maker');
  officerToken = await createToken(pool, 'revocation-officer', null);
  factory = new FleetApiClient(apiUrl, factoryToken);
  officer = new FleetApiClient(apiUrl, officerToken);
  secondOfficer = new FleetApiClient(apiUrl, await createToken(pool, 'revocation-officer', null, 'test-second-officer'));
  status = await createStatusSite({ ...config, site: 'a' }, { logger: false, tickEveryMs: 200 });
  await status.app.listen({ host: '127.0.0.1', port: 0 });
  statusUrl = `http://127.0.0.1:${(status.app.server.address() as AddressInfo).port}`;
});

after(async () => {
  if (worker) await stopProcess(worker);
  await status?.close();
  await issuer?.close();
  await pool?.end();
});

function file(name: string, content: string | Buffer): string {
  return writeCaFile(ca, name, content);
}

/** Enrols one device key (smart-meter profile: it has a CRL distribution point) and writes the PEM. */
async function enrolDevice(): Promise<{ pem: string; path: string; serial: string; eui64: string; crlPath: string }> {
  const [key] = generateDeviceKeys(1);
  const eui64 = syntheticEui64('revocation-maker');
  const res = await issuer.app.inject({
    method: 'POST',
    url: '/v1/enrolments',
    headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
    payload: { eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') },
  });
  assert.equal(res.statusCode, 201, res.body);
  const body = res.json<{ certificate: string; serial: string }>();
  const path = file(`${body.serial}.pem`, body.certificate);
  const dp = openssl(['x509', '-in', path, '-noout', '-ext', 'crlDistributionPoints']);
  const url = /URI:(\S+)/.exec(dp)![1]!;
  return { pem: body.certificate, path, serial: body.serial, eui64, crlPath: new URL(url).pathname };
}

function ocspStatus(certPath: string): Promise<string> {
  return opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-cert', certPath, '-url', `${statusUrl}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
}

async function fetchCrl(path: string, name: string): Promise<string> {
  const res = await fetch(`${statusUrl}${path}`);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  const der = Buffer.from(await res.arrayBuffer());
  return file(name, toPem(der, 'X509 CRL'));
}

describe('revocation, CRLs and OCSP', () => {
  let revoked: Awaited<ReturnType<typeof enrolDevice>>;
  let good: Awaited<ReturnType<typeof enrolDevice>>;

  it('OCSP says good, then revoked with time and reason once an officer revokes', async () => {
    revoked = await enrolDevice();
    good = await enrolDevice();
    const before = (await ocspStatus(revoked.path));
    assert.match(before, /Response verify OK/);
    assert.match(before, /: good/);
    const outcome = await officer.revoke({ serials: [revoked.serial] }, 'keyCompromise');
    assert.deepEqual([outcome.revoked, outcome.alreadyRevoked, outcome.reason], [1, 0, 1]);
    const after = await waitFor('OCSP revoked', async () => {
      const text = (await ocspStatus(revoked.path));
      return /: revoked/.test(text) ? text : undefined;
    }, 10_000, 200);
    assert.match(after, /Reason: keyCompromise/);
    assert.match(after, /Revocation Time: /);
    assert.match((await ocspStatus(good.path)), /: good/);
    // Visible in certificate queries.
    const view = await issuer.app.inject({ url: `/v1/certificates/${revoked.serial}`, headers: { authorization: `Bearer ${officerToken}` } });
    assert.equal(view.json<{ status: string }>().status, 'revoked');
  });

  it('is idempotent: a second revocation changes nothing', async () => {
    const again = await officer.revoke({ serials: [revoked.serial] }, 'superseded');
    assert.deepEqual([again.revoked, again.alreadyRevoked], [0, 1]);
    assert.match((await ocspStatus(revoked.path)), /Reason: keyCompromise/);
  });

  it('publishes shard CRLs and deltas that OpenSSL verifies; verify -crl_check fails for the revoked certificate only', async () => {
    // The shard may already list other tests' revocations: wait for this one.
    await waitFor('shard republished with the revoked serial', async () => {
      const crl = await fetchCrl(revoked.crlPath, 'r.crl.pem');
      return openssl(['crl', '-in', crl, '-noout', '-text']).includes(`Serial Number: ${revoked.serial.toUpperCase()}`) ? true : undefined;
    }, 10_000, 200);
    const crl = await fetchCrl(revoked.crlPath, 'revoked-shard.crl.pem');
    assert.match(await opensslAsync(['crl', '-in', crl, '-CAfile', ca.issuingPem, '-noout', '-verify']), /verify OK/);
    const text = openssl(['crl', '-in', crl, '-noout', '-text']);
    assert.match(text, new RegExp(`Serial Number: ${revoked.serial.toUpperCase()}`));
    assert.match(text, /Issuing Distribution Point: critical/);
    assert.ok(text.includes(`URI:${config.crlBaseUrl.replace(/\/$/, '')}`), 'IDP names the shard URL');
    const delta = await fetchCrl(revoked.crlPath.replace(/\.crl$/, '-delta.crl'), 'revoked-delta.crl.pem');
    assert.match(await opensslAsync(['crl', '-in', delta, '-CAfile', ca.issuingPem, '-noout', '-verify']), /verify OK/);
    assert.match(openssl(['crl', '-in', delta, '-noout', '-text']), /Delta CRL Indicator: critical/);

    const chain = file('chain-ca.pem', `${openssl(['x509', '-in', ca.issuingPem])}${openssl(['x509', '-in', ca.rootPem])}`);
    assert.throws(() => openssl(['verify', '-crl_check', '-CAfile', chain, '-CRLfile', crl, revoked.path]), /certificate revoked/);
    const goodCrl = await fetchCrl(good.crlPath, 'good-shard.crl.pem');
    assert.match(openssl(['verify', '-crl_check', '-CAfile', chain, '-CRLfile', goodCrl, good.path]), /: OK/);
  });

  it('never lets a CRL number go backwards', async () => {
    const number = async () => BigInt(/X509v3 CRL Number: \n\s*(\d+)/.exec(openssl(['crl', '-in', await fetchCrl(revoked.crlPath, 'n.crl.pem'), '-noout', '-text']))![1]!);
    const first = await number();
    await status.publisher!.publish([crlShardOf(Buffer.from(revoked.serial, 'hex'), 64)]);
    assert.ok((await number()) > first);
  });

  it('a revocation committing while two CRL publications wait for its lock is in both; neither fails', async () => {
    // The fault: the publication read its snapshot before its lock was granted, so a revocation that
    // committed during the wait was missing from a CRL that claimed to cover its time, and its shard's
    // dirty mark (already there, so the revocation's own insert did nothing) was cleared; two
    // publications at once failed with a serialization error on the CRL number.
    const device = await enrolDevice();
    const serial = Buffer.from(device.serial, 'hex');
    const { rows: certs } = await pool.query<{ ca_id: string; crl_shard: number }>('SELECT ca_id, crl_shard FROM certificates WHERE serial = $1', [serial]);
    const { ca_id: caId, crl_shard: shard } = certs[0]!;
    await pool.query('INSERT INTO crl_dirty (ca_id, shard) VALUES ($1, $2) ON CONFLICT DO NOTHING', [caId, shard]);
    const writer = await pool.connect();
    let publications: Promise<{ entries: number }>[] = [];
    try {
      // A revocation writer as the store's revoke runs it: the lock, the row, the dirty mark, held open.
      await writer.query('BEGIN');
      await writer.query('SELECT fp_lock_revocations_for_insert()');
      await writer.query(`INSERT INTO revocations (serial, ca_id, crl_shard, reason, requested_by) VALUES ($1, $2, $3, 1, 'test-writer')`, [serial, caId, shard]);
      await writer.query('INSERT INTO crl_dirty (ca_id, shard) VALUES ($1, $2) ON CONFLICT DO NOTHING', [caId, shard]);
      publications = [status.publisher!.publish([shard]), status.publisher!.publish([shard])];
      await waitFor('both publications waiting for the revocations lock', async () => {
        const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'revocations'::regclass AND NOT granted");
        return rows[0]!.n >= 2 ? true : undefined;
      }, 10_000, 20);
      await writer.query('COMMIT');
    } catch (err) {
      await writer.query('ROLLBACK');
      throw err;
    } finally {
      writer.release();
    }
    const reports = await Promise.all(publications);
    const { rows: inShard } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM revocations WHERE ca_id = $1 AND crl_shard = $2', [caId, shard]);
    for (const report of reports) assert.equal(report.entries, inShard[0]!.n, 'the publication lists every revocation committed before it read');
    const crl = readCrlSerials(Buffer.from(await (await fetch(`${statusUrl}${device.crlPath}`)).arrayBuffer())).map((s) => s.toString('hex'));
    assert.ok(crl.includes(device.serial.toLowerCase()), 'the published CRL lists the serial');
  });

  it('revokes 10,000 devices from a list file: each in exactly its own shard and revoked in OCSP', async () => {
    worker = startService(config, 'batch-worker', { FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'error' });
    const manifest = join(ca.dir, 'revoke-10k.ndjson');
    const { euiPrefix } = await generateManifest({ devices: 10_000, out: manifest, threads: 2, euiPrefix: syntheticRunPrefix('revocation-maker') });
    const { batch } = await factory.submitBatch(manifest);
    await waitFor('batch complete', async () => ((await factory.getBatch(batch.id)).status === 'complete' ? true : undefined), 120_000, 250);
    const lines = ['eui64', ...Array.from({ length: 10_000 }, (_, i) => generatedEui64(euiPrefix, i))];
    const listPath = file('revoke-list.csv', lines.join('\n') + '\n');
    const list = await readRevocationList(createReadStream(listPath));
    assert.equal(list.devices.length, 10_000);
    // Above the dual-control threshold: one officer requests, a second approves, the first executes.
    await assert.rejects(officer.revoke({ devices: list.devices }, 'cessationOfOperation'), { code: 'APPROVAL_REQUIRED' });
    const outcome = await revokeUnderDualControl(officer, secondOfficer, { devices: list.devices }, 'cessationOfOperation');
    assert.ok(outcome.approvalId);
    assert.equal(outcome.revoked, 10_000);
    assert.equal(outcome.notFound, 0);

    const { rows } = await pool.query<{ serial: Buffer; crl_shard: number }>('SELECT serial, crl_shard FROM certificates WHERE batch_id = $1', [batch.id]);
    assert.equal(rows.length, 10_000);
    await status.publisher!.publishDue();
    const inShard = new Map<string, number>();
    for (let shard = 0; shard < 64; shard++) {
      const res = await fetch(`${statusUrl}/crl/fpd1/s${String(shard).padStart(4, '0')}.crl`);
      for (const serial of readCrlSerials(Buffer.from(await res.arrayBuffer()))) {
        const hex = serial.toString('hex');
        assert.ok(!inShard.has(hex), `serial ${hex} listed twice`);
        inShard.set(hex, shard);
      }
    }
    for (const r of rows) {
      assert.equal(inShard.get(r.serial.toString('hex')), r.crl_shard, `serial ${r.serial.toString('hex')} in shard ${r.crl_shard}`);
      assert.equal(r.crl_shard, crlShardOf(r.serial, 64));
    }
    // OCSP for every one of them, through the responder (a sample over HTTP with OpenSSL above).
    const record = parseCaCertificate(issuingDer());
    const hashes = ocspIssuerHashes(record.subjectDer, record.publicKeySpki);
    let revokedCount = 0;
    for (const r of rows) {
      const answer = await status.ocsp.respond(buildOcspRequest(buildCertId('sha256', hashes, r.serial)));
      if (answer.kind === 'revoked') revokedCount++;
    }
    assert.equal(revokedCount, 10_000);
  });
});

describe('OCSP responder under bad input', () => {
  const post = (body: Buffer) => fetch(`${statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body });
  const malformed = '30030a0101';

  const cases: [string, () => Buffer][] = [
    ['random bytes', () => randomBytes(200)],
    ['truncated DER', () => Buffer.from('3082010a0201', 'hex')],
    ['an empty SEQUENCE', () => Buffer.from('3000', 'hex')],
    ['a certificate instead of a request', () => issuingDer()],
  ];
  for (const [name, body] of cases) {
    it(`${name} -> malformedRequest`, async () => {
      const res = await post(body());
      assert.equal(res.status, 200);
      assert.equal(Buffer.from(await res.arrayBuffer()).toString('hex'), malformed);
    });
  }

  it('a huge body -> 413, and the responder keeps answering', async () => {
    const res = await post(randomBytes(200_000));
    assert.equal(res.status, 413);
    const get = await fetch(`${statusUrl}/ocsp/${encodeURIComponent(randomBytes(40).toString('base64'))}`);
    assert.equal(Buffer.from(await get.arrayBuffer()).toString('hex'), malformed);
    assert.equal((await fetch(`${statusUrl}/healthz`)).status, 200);
  });

  it('POST /ocsp: another media type -> 415 with its code; media type parameters are accepted; a chunked body past the limit -> 413', async () => {
    const request = buildOcspRequest(buildCertId('sha1', ocspIssuerHashes(parseCaCertificate(issuingDer()).subjectDer, parseCaCertificate(issuingDer()).publicKeySpki), randomBytes(9)));
    const json = await fetch(`${statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 415);
    assert.equal(((await json.json()) as { code: string }).code, 'MEDIA_TYPE_UNSUPPORTED');
    const withParameter = await fetch(`${statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'Application/OCSP-Request; charset=binary' }, body: request });
    assert.equal(withParameter.status, 200);
    assert.equal(withParameter.headers.get('content-type'), 'application/ocsp-response');
    assert.equal(withParameter.headers.get('cache-control'), 'no-store');
    // No content-length: the body arrives in chunks and is cut off past the limit.
    const chunks = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(randomBytes(1_000));
        controller.close();
      },
    });
    const chunked = await fetch(`${statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: chunks, duplex: 'half' } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.equal(((await chunked.json()) as { code: string }).code, 'BODY_TOO_LARGE');
  });

  it('another issuer -> unauthorized; a serial we never issued -> unknown', async () => {
    const record = parseCaCertificate(issuingDer());
    const hashes = ocspIssuerHashes(record.subjectDer, record.publicKeySpki);
    const foreign = ocspIssuerHashes(Buffer.from('300f310d300b06035504030c0446414b45', 'hex'), record.publicKeySpki);
    const unauthorized = await post(buildOcspRequest(buildCertId('sha1', foreign, randomBytes(9))));
    assert.equal(Buffer.from(await unauthorized.arrayBuffer()).toString('hex'), '30030a0106');
    const unknown = await post(buildOcspRequest(buildCertId('sha1', hashes, Buffer.concat([Buffer.from([0x0a]), randomBytes(8)]))));
    const path = file('unknown.der', Buffer.from(await unknown.arrayBuffer()));
    assert.match(openssl(['ocsp', '-respin', path, '-resp_text', '-noverify']), /Cert Status: unknown/);
  });

  it('unknown serials past the per-address budget get tryLater, signed for nobody; the address is answered again once the budget refilled', async () => {
    const record = parseCaCertificate(issuingDer());
    const hashes = ocspIssuerHashes(record.subjectDer, record.publicKeySpki);
    const budget = config.ocspOnDemand.perAddressPerSecond;
    const answers = await Promise.all(
      Array.from({ length: budget * 3 }, async () => {
        const res = await post(buildOcspRequest(buildCertId('sha256', hashes, Buffer.concat([Buffer.from([0x0b]), randomBytes(8)]))));
        return Buffer.from(await res.arrayBuffer()).toString('hex');
      }),
    );
    const tryLater = answers.filter((a) => a === '30030a0103').length;
    const signed = answers.length - tryLater;
    // The bucket starts full and refills while the burst is served: at most about twice the budget.
    assert.ok(signed >= 1 && signed <= budget * 2, `signed ${signed} unknown-serial answers for one address (budget ${budget}/s)`);
    assert.ok(tryLater >= budget, `tryLater for the rest: ${tryLater}`);
    // While its budget is spent the address gets tryLater for anything not cached; once it refills
    // (a second at most), a device it has never asked about is answered again.
    const dev = await enrolDevice();
    await new Promise((r) => setTimeout(r, 1_100));
    assert.match(await ocspStatus(dev.path), /: good/, 'the address is answered again once its budget refilled');
  });

  it('GET requests get HTTP caching headers', async () => {
    const dev = await enrolDevice();
    const reqPath = join(ca.dir, 'get.req');
    await opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-cert', dev.path, '-reqout', reqPath, '-no_nonce']);
    const der = execFileSync('cat', [reqPath]);
    const res = await fetch(`${statusUrl}/ocsp/${encodeURIComponent(der.toString('base64'))}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('cache-control')!, /max-age=\d+, public, no-transform, must-revalidate/);
    assert.ok(res.headers.get('etag') && res.headers.get('expires') && res.headers.get('last-modified'));
    const path = file('get.resp', Buffer.from(await res.arrayBuffer()));
    assert.match(openssl(['ocsp', '-respin', path, '-issuer', ca.issuingPem, '-cert', dev.path, '-CAfile', ca.rootPem]), /: good/);
  });
});

describe('OCSP pre-production and the revocation feed', () => {
  it('pre-produces a stored, verifiable good response for every new certificate', async () => {
    const devices = [await enrolDevice(), await enrolDevice(), await enrolDevice()];
    await status.preProducer!.preProduceNew({ settleMs: 0, limit: 1_000_000, budgetMs: 60_000 });
    for (const d of devices) {
      const { rows } = await pool.query<{ status: string; der: Buffer }>("SELECT status, der FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1'", [Buffer.from(d.serial, 'hex')]);
      assert.equal(rows.length, 1, `a stored response for ${d.serial}`);
      assert.equal(rows[0]!.status, 'good');
      const path = file(`${d.serial}.ocsp`, rows[0]!.der);
      const text = await opensslAsync(['ocsp', '-respin', path, '-issuer', ca.issuingPem, '-CAfile', ca.rootPem, '-cert', d.path, '-no_nonce']);
      assert.match(text, /Response verify OK/);
      assert.match(text, /: good/);
    }
  });

  it('applies every revocation of a request larger than one pass, each once', async () => {
    // A responder of its own without the background loop, so the passes are counted exactly.
    const responder = await createStatusRuntime({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0 });
    try {
      const devices = await Promise.all(Array.from({ length: 25 }, () => enrolDevice()));
      await officer.revoke({ serials: devices.map((d) => d.serial) }, 'superseded');
      let applied = 0;
      for (let pass = 0; pass < 10; pass++) applied += await responder.revocations.applyNewRevocations(7);
      assert.equal(applied, 25, 'each revocation applied exactly once across passes of 7');
      const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ocsp_responses WHERE serial = ANY($1::bytea[]) AND hash_alg = 'sha1' AND status = 'revoked'", [devices.map((d) => Buffer.from(d.serial, 'hex'))]);
      assert.equal(rows[0]!.n, 25);
    } finally {
      await responder.close();
    }
  });
});

describe('revocation requests', () => {
  it('refuse a bad reason, a factory token and an empty target with stable codes', async () => {
    await assert.rejects(officer.revoke({ serials: ['0a00'] }, 'becauseISaidSo'), { code: 'REVOCATION_REASON_INVALID' });
    await assert.rejects(officer.revoke({ serials: [] }), { code: 'REVOCATION_EMPTY' });
    await assert.rejects(officer.revoke({ serials: ['zz'] }), { code: 'SERIAL_INVALID' });
    await assert.rejects(factory.revoke({ serials: ['0a00'] }), { code: 'ROLE_FORBIDDEN' });
    const missing = await officer.revoke({ serials: ['0a0102030405060708'] });
    assert.deepEqual([missing.revoked, missing.notFound], [0, 1]);
  });
});

function issuingDer(): Buffer {
  return execFileSync('openssl', ['x509', '-in', ca.issuingPem, '-outform', 'DER']);
}

