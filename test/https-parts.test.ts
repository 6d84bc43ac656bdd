import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FleetApiClient } from '@fleetpki/client';
import { entryPoint, InternalHttps, isFleetError, loadConfig, type FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { EnrolmentTraffic, OcspProbe } from '@fleetpki/drills';
import { syntheticEui64, syntheticRunPrefix } from '@fleetpki/manifest';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { listCas, type Pool } from '@fleetpki/store';
import { generateDeviceKeys, ocspIssuerHashes, parseCaCertificate, toPem } from '@fleetpki/x509';
import { buildOcspRequest } from '@fleetpki/ca';
import { freePort } from '../scripts/lib/free-port.js';
import { createToken, ensureCa, openssl, opensslAsync, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';
import { OcspAsker, verdictOf } from './support/ocsp.js';
import { createStatusSite, type StatusSiteRuntime } from './support/status.js';
import { makeTestTlsCa, type TestTlsCa, type TestTlsPair } from './support/tls-material.js';

/**
 * The issuer API and the status responder over HTTPS with tls.api and tls.status (throw-away material
 * from tls-material.ts, named by the FLEETPKI_TLS_* variables: no configuration file), and the clients
 * that check them against tls.caBundle: the project's own internal client, API client and drill probes,
 * curl, openssl s_client (openssl ocsp verifies the response, not the TLS server). OCSP and CRLs stay on plain HTTP too, on the listener for them (sites.a.status.httpPort).
 */
let config: FleetConfig;
let https: FleetConfig;
let env: Record<string, string>;
let pool: Pool;
let ca: TestCa;
let tlsCa: TestTlsCa;
let statusPair: TestTlsPair;
let apiPair: TestTlsPair;
let issuer: IssuerRuntime;
let status: StatusSiteRuntime;
let factoryToken: string;
const MAKER = 'https-parts-maker';

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  tlsCa = makeTestTlsCa('fleetpki https-parts test CA');
  statusPair = tlsCa.server('status', ['127.0.0.1', 'localhost']);
  apiPair = tlsCa.server('api', ['127.0.0.1', 'localhost']);
  // The bundle keeps what the run already trusts (its links to PostgreSQL, Redis, etcd, when those are TLS).
  const bundle = join(tlsCa.dir, 'bundle.pem');
  writeFileSync(bundle, readFileSync(tlsCa.caPem, 'utf8') + (config.tls.caBundle ? readFileSync(config.tls.caBundle, 'utf8') : ''));
  const [apiPort, statusPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  env = {
    FLEETPKI_TLS_CA_BUNDLE: bundle,
    FLEETPKI_TLS_API_CERT: apiPair.cert,
    FLEETPKI_TLS_API_KEY: apiPair.key,
    FLEETPKI_TLS_STATUS_CERT: statusPair.cert,
    FLEETPKI_TLS_STATUS_KEY: `file:${statusPair.key}`,
    FLEETPKI_API_PORT_A: String(apiPort),
    FLEETPKI_STATUS_PORT_A: String(statusPort),
    FLEETPKI_STATUS_HTTP_PORT_A: String(httpPort),
  };
  https = loadConfig({ ...process.env, FLEETPKI_SITE: 'a', ...env });
  issuer = await createIssuerRuntime(https, { logger: false, hsmSessions: 1, poolSize: 4 });
  await issuer.app.listen({ host: '127.0.0.1', port: apiPort });
  status = await createStatusSite(https, { logger: false, tickEveryMs: 0 });
  await status.app.listen({ host: '127.0.0.1', port: statusPort });
  await status.responder.plainApp!.listen({ host: '127.0.0.1', port: httpPort });
  factoryToken = await createToken(pool, 'factory', MAKER, 'https-parts-factory');
});

after(async () => {
  await status?.close();
  await issuer?.close();
  await pool?.end();
});

/** A device enrolled through the API over HTTPS by the project's own client (its server checked against the bundle). */
async function enrolOverHttps(): Promise<{ serial: string; path: string; crlPath: string }> {
  const factory = FleetApiClient.forSite(https, 'a', factoryToken);
  try {
    const [key] = generateDeviceKeys(1);
    const enrolled = await factory.enrol({ eui64: syntheticEui64(MAKER), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    const path = writeCaFile(ca, `https-${enrolled.serial}.pem`, enrolled.certificate);
    const dp = openssl(['x509', '-in', path, '-noout', '-ext', 'crlDistributionPoints']);
    return { serial: enrolled.serial, path, crlPath: new URL(/URI:(\S+)/.exec(dp)![1]!).pathname };
  } finally {
    await factory.close();
  }
}

/** One plain-HTTP request, as a device (or a probe pointed at the wrong port) sends it. */
function plainGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

function run(file: string, args: readonly string[], environment: NodeJS.ProcessEnv = process.env, input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { encoding: 'utf8', env: environment, timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

describe('the issuer API and the status responder over HTTPS', () => {
  it('the configuration names https URLs, and OCSP and CRLs on the plain listener', () => {
    assert.equal(https.api.tls, true);
    assert.match(https.sites.a.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(https.sites.a.statusUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(https.ocspUrl, `http://127.0.0.1:${env.FLEETPKI_STATUS_HTTP_PORT_A}/ocsp`);
  });

  it('the issuer API started with tls.api answers over HTTPS, and curl --cacert verifies it', async () => {
    const ok = await run('curl', ['-sS', '--fail', '--cacert', tlsCa.caPem, `${https.sites.a.apiUrl}/healthz`]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /"status"/);
    // Without the bundle, curl refuses the server (its own CAs do not know the test CA).
    const refused = await run('curl', ['-sS', '--fail', `${https.sites.a.apiUrl}/healthz`], { ...process.env, CURL_CA_BUNDLE: '', SSL_CERT_FILE: '/dev/null' });
    assert.notEqual(refused.code, 0, refused.out);
    assert.match(refused.out, /certificate/i);
  });

  it('OCSP over HTTPS: a verified response to openssl ocsp and to the project\'s own client, which checks the server against the bundle', async () => {
    const device = await enrolOverHttps();
    const answer = await waitFor('a good OCSP answer over https', async () => {
      const out = await opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-cert', device.path, '-url', `${https.sites.a.statusUrl}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
      return /: good/.test(out) ? out : undefined;
    }, 20_000, 300);
    assert.match(answer, /Response verify OK/);
    // openssl ocsp (3.0) does not check the TLS server's certificate itself: s_client shows the status
    // server's chains to the bundle, and fleetpki's own client will not ask over https without that check.
    const handshake = await run('openssl', ['s_client', '-connect', new URL(https.sites.a.statusUrl).host, '-CAfile', tlsCa.caPem, '-verify_return_error', '-verify_ip', '127.0.0.1', '-brief'], process.env, '');
    assert.match(handshake.out, /Verification: OK/);
    const asker = await OcspAsker.forIssuingCa(pool);
    const request = buildOcspRequest(asker.certId(Buffer.from(device.serial, 'hex')));
    const own = await new InternalHttps(https).request('status', `${https.sites.a.statusUrl}/ocsp`, { headers: { 'content-type': 'application/ocsp-request' }, body: request });
    assert.equal(own.status, 200);
    assert.equal(verdictOf(own.body, asker.certId(Buffer.from(device.serial, 'hex'))), 'good');
    // Devices ask over plain HTTP, on the listener for it: the same signed answer.
    const plain = await opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-cert', device.path, '-url', https.ocspUrl, '-CAfile', ca.rootPem, '-no_nonce']);
    assert.match(plain, /: good/);
    assert.match(plain, /Response verify OK/);
  });

  it('a CRL fetched over HTTPS by the internal client passes openssl crl -verify, and is the plain listener\'s too', async () => {
    const device = await enrolOverHttps();
    await status.tick();
    const client = new InternalHttps(https);
    const answer = await waitFor('the device\'s CRL shard', async () => {
      const a = await client.request('status', `${https.sites.a.statusUrl}${device.crlPath}`);
      if (a.status === 200) return a;
      await status.tick();
      return undefined;
    }, 30_000, 200);
    assert.equal(answer.headers['content-type'], 'application/pkix-crl');
    const crl = writeCaFile(ca, 'https-parts.crl.pem', toPem(answer.body, 'X509 CRL'));
    assert.match(await opensslAsync(['crl', '-in', crl, '-CAfile', ca.issuingPem, '-noout', '-verify']), /verify OK/);
    const plain = await client.request('status', `http://127.0.0.1:${env.FLEETPKI_STATUS_HTTP_PORT_A}${device.crlPath}`);
    assert.equal(plain.status, 200);
    assert.deepEqual(plain.body, answer.body);
  });

  it('plain HTTP is refused for the operator endpoints: 403 HTTPS_REQUIRED on the plain listener, no answer on the HTTPS port', async () => {
    for (const path of ['/healthz', '/metrics']) {
      const res = await plainGet(`http://127.0.0.1:${env.FLEETPKI_STATUS_HTTP_PORT_A}${path}`);
      assert.equal(res.status, 403, path);
      assert.equal((JSON.parse(res.body) as { code: string }).code, 'HTTPS_REQUIRED');
    }
    await assert.rejects(plainGet(`http://127.0.0.1:${env.FLEETPKI_STATUS_PORT_A}/healthz`));
    // Over HTTPS the same endpoint answers.
    const health = await new InternalHttps(https).json<{ status: string }>('status', `${https.sites.a.statusUrl}/healthz`);
    assert.deepEqual([health.status, health.body.status], [200, 'ok']);
  });

  it('a client with the wrong CA bundle fails with a stable code and sends nothing', async () => {
    const other = makeTestTlsCa('another CA');
    const wrong = loadConfig({ ...process.env, FLEETPKI_SITE: 'a', ...env, FLEETPKI_TLS_CA_BUNDLE: other.caPem });
    const client = new InternalHttps(wrong);
    await assert.rejects(client.request('status', `${wrong.sites.a.statusUrl}/healthz`), (err: unknown) => isFleetError(err, 'STATUS_TLS_UNTRUSTED') && err.message.includes(other.caPem));
    await assert.rejects(client.request('api', `${wrong.sites.a.apiUrl}/healthz`), (err: unknown) => isFleetError(err, 'API_TLS_UNTRUSTED'));
    // Waiting does not mend it: the wait ends at once with the code.
    await assert.rejects(waitForHttp(`${wrong.sites.a.statusUrl}/healthz`, 60_000, { https: client, part: 'status' }), (err: unknown) => isFleetError(err, 'STATUS_TLS_UNTRUSTED'));
    // The API client: refused at the handshake, before its token is sent.
    const factory = FleetApiClient.forSite(wrong, 'a', factoryToken);
    await assert.rejects(factory.ca(), (err: unknown) => isFleetError(err, 'API_TLS_UNTRUSTED'));
    await assert.rejects(factory.approvals(), (err: unknown) => isFleetError(err, 'API_TLS_UNTRUSTED') && err.message.includes(other.caPem));
    await factory.close();
    // A certificate for another name is refused the same way (the bundle is right, the host is not).
    const misnamed = tlsCa.server('status-misnamed', ['status.example.net']);
    const server = await import('node:https').then(({ createServer }) => createServer({ cert: readFileSync(misnamed.cert), key: readFileSync(misnamed.key) }, (_req, res) => res.end('{}')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await assert.rejects(new InternalHttps(https).request('status', `https://127.0.0.1:${(server.address() as { port: number }).port}/healthz`), (err: unknown) => isFleetError(err, 'STATUS_TLS_UNTRUSTED') && /ERR_TLS_CERT_ALTNAME_INVALID/.test(err.message));
    } finally {
      server.close();
    }
  });

  it('the drills\' probes enrol and ask OCSP over HTTPS against the bundle, and count a wrong bundle as a TLS refusal', async () => {
    const client = new InternalHttps(https);
    const traffic = new EnrolmentTraffic([https.sites.a], factoryToken, generateDeviceKeys(2).map((k) => k.csr), syntheticRunPrefix(MAKER), 0, client);
    traffic.start(1);
    await waitFor('two enrolments acknowledged over https', async () => (traffic.acknowledged.length === 2 ? true : undefined), 30_000, 50);
    await traffic.stop();
    assert.deepEqual([...traffic.refusals.keys()], []);
    const issuing = parseCaCertificate((await listCas(pool)).find((c) => c.id === 'fpd1')!.certificate);
    const probe = new OcspProbe(https.sites.a, ocspIssuerHashes(issuing.subjectDer, issuing.publicKeySpki), Buffer.from(traffic.acknowledged[0]!.serial, 'hex'), client);
    probe.start(50);
    try {
      await waitFor('two OCSP answers over https', async () => (probe.answered >= 2 ? true : undefined), 30_000, 50);
    } finally {
      probe.stop();
    }
    assert.equal(probe.failed, 0);
    const other = makeTestTlsCa('another CA for the probes');
    const wrong = new InternalHttps(loadConfig({ ...process.env, FLEETPKI_SITE: 'a', ...env, FLEETPKI_TLS_CA_BUNDLE: other.caPem }));
    const refused = new EnrolmentTraffic([https.sites.a], factoryToken, generateDeviceKeys(1).map((k) => k.csr), syntheticRunPrefix(MAKER), 0, wrong);
    refused.start(1);
    await waitFor('a refusal', async () => (refused.refusals.size > 0 ? true : undefined), 30_000, 50);
    await refused.stop();
    assert.deepEqual([...refused.refusals.keys()], ['a: API_TLS_UNTRUSTED']);
    assert.equal(refused.acknowledged.length, 0);
  });

  it('the status responder process serves both listeners from the variables alone, and stops at start when its key is not its certificate\'s', async () => {
    const [statusPort, httpPort] = [await freePort(), await freePort()];
    const processEnv = { ...env, FLEETPKI_SITE: 'a', FLEETPKI_STATUS_PORT_A: String(statusPort), FLEETPKI_STATUS_HTTP_PORT_A: String(httpPort) };
    const own = loadConfig({ ...process.env, ...processEnv });
    const responder = startService(config, 'status-responder', processEnv);
    try {
      await waitForHttp(`${own.sites.a.statusUrl}/healthz`, 60_000, { https: new InternalHttps(own), part: 'status' });
      assert.equal((await plainGet(`http://127.0.0.1:${httpPort}/healthz`)).status, 403);
      assert.equal((await plainGet(`http://127.0.0.1:${httpPort}/crl/fpd1/s9999.crl`)).status, 404, 'CRLs are served on the plain listener (none for this shard)');
    } finally {
      await stopProcess(responder);
    }
    const failed = await run(process.execPath, entryPoint(config.repoRoot, 'status-responder'), { ...process.env, FLEETPKI_LOG_LEVEL: 'warn', ...processEnv, FLEETPKI_TLS_STATUS_CERT: apiPair.cert });
    assert.equal(failed.code, 1, failed.out);
    assert.match(failed.out, /STATUS_TLS_MATERIAL: tls\.status: the key .* does not go with the certificate/);
  });
});
