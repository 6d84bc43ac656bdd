import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, DeviceKeyService, loadSiteIssuer } from '@fleetpki/ca';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, syntheticEui64, syntheticRunPrefix } from '@fleetpki/manifest';
import { listMasterKeys, setManufacturerTransportKey } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, waitFor, type Pool } from './support/sites.js';

/**
 * Issue 40 (6): each device-key download holds an HSM session (its transport key is a session object)
 * for as long as its reader takes, with no cap. Here at most one bundle may be open, for 4 s.
 *
 * The API listens on a Unix socket: loopback TCP buffers grow to ~4 MB for a reader that does not read,
 * so only a bundle of some twenty thousand devices would make the server wait on it; a Unix socket
 * buffers ~200 KB, which 3,000 devices' keys (~700 KB) overflow.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
const DEVICES = 3_000;
const BUNDLES = { concurrency: 1, maxSeconds: 4 };
const MAKER = 'bundle-maker';

let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let socketPath: string;
let token: string;
let batchId: string;

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** https when the configuration gives the API a pair (scripts/test-secure.sh), else http; over the socket either way. */
const web = () => (config.tls.parts.api ? https : http);

function call(method: string, path: string, body?: NodeJS.ReadableStream, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = web().request({ socketPath, method, path, headers: { authorization: `Bearer ${token}`, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body.pipe(req);
    else req.end();
  });
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  token = await createToken(pool, 'factory', MAKER);
  const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await setManufacturerTransportKey(pool, MAKER, transport.publicKey.export({ format: 'der', type: 'spki' }));
  runtime = await createIssuerRuntime({ ...config, site: 'a', deviceKeyBundles: BUNDLES }, { logger: false, hsmSessions: 1, poolSize: 4 });
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-device-key-limits-'));
  socketPath = join(dir, 'api.sock');
  await runtime.app.listen({ path: socketPath });
  // Master keys, if this run's database has none yet (a first key needs no approval).
  const masters = new DeviceKeyService(pool, runtime.keyStore, 'a');
  for (const role of ['mac', 'enc'] as const) {
    if (!(await listMasterKeys(pool)).some((m) => m.role === role && m.status === 'active')) await masters.createMasterKey(role, 'test');
  }
  // A batch of DEVICES issued certificates (issued here, chunk by chunk, as a worker would).
  const manifest = join(dir, 'batch.ndjson');
  await generateManifest({ devices: DEVICES, out: manifest, roles: ['digitalSignature'], keyForm: 'csr', threads: 2, euiPrefix: syntheticRunPrefix(MAKER) });
  const uploaded = await call('POST', '/v1/batches', createReadStream(manifest), { 'content-type': 'application/x-ndjson' });
  assert.equal(uploaded.status, 201, uploaded.text);
  const batch = JSON.parse(uploaded.text) as { id: string; chunks: { total: number } };
  batchId = batch.id;
  const site = await loadSiteIssuer({ ...config, site: 'a' }, pool, runtime.keyStore);
  const issuer = ChunkIssuer.forPool(pool, site.ca, 'a', site.serialPrefix);
  for (let chunk = 0; chunk < batch.chunks.total; chunk++) await issuer.issue(batchId, chunk);
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

/** A download whose reader takes the answer's first bytes and then reads nothing more. */
function stalledDownload(): { firstBytes: Promise<string>; rest(): Promise<string>; destroy(): void } {
  // TLS on the socket when the API serves HTTPS (the certificate names localhost; NODE_EXTRA_CA_CERTS trusts its CA).
  const socket = config.tls.parts.api ? tlsConnect({ path: socketPath, servername: 'localhost' }) : net.connect(socketPath);
  let received = '';
  const firstBytes = new Promise<string>((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      received += chunk.toString('latin1');
      resolve(received);
    });
    socket.once('error', reject);
  });
  socket.write(`GET /v1/batches/${batchId}/device-keys HTTP/1.1\r\nhost: fleetpki\r\nauthorization: Bearer ${token}\r\n\r\n`);
  return {
    firstBytes,
    // Reads on, to the end of what the server sent before it closed the connection.
    rest: () =>
      new Promise((resolve) => {
        socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
        socket.once('close', () => resolve(received));
        socket.once('error', () => undefined);
        socket.resume();
      }),
    destroy: () => socket.destroy(),
  };
}

async function bundleAudits(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'device-key.bundle' AND subject = $1", [batchId]);
  return rows[0]!.n;
}

async function expiredBundleAudits(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'device-key.bundle' AND subject = $1 AND details->>'expired' = 'true'", [batchId]);
  return rows[0]!.n;
}

describe('device-key bundle downloads are capped and have a deadline', () => {
  it('a slow reader holds the only bundle slot: a second download gets 429; at the deadline the slow one is cut and audited, and the slot is free again', async () => {
    const slow = stalledDownload();
    try {
      assert.match(await slow.firstBytes, /^HTTP\/1\.1 200 /);

      const second = await call('GET', `/v1/batches/${batchId}/device-keys`);
      assert.equal(second.status, 429, second.text.slice(0, 300));
      assert.equal((JSON.parse(second.text) as { code: string }).code, 'DEVICE_KEY_BUNDLES_BUSY');
      assert.match(String(second.headers['retry-after']), /^[1-9][0-9]*$/);

      // At the deadline the bundle closes (its HSM session released; audited as cut), and so does the download.
      await waitFor('the slow bundle closed at its deadline', async () => ((await expiredBundleAudits()) === 1 ? true : undefined), (BUNDLES.maxSeconds + 30) * 1000, 200);
      const text = await slow.rest();
      const keyLines = text.split('\n').filter((l) => l.startsWith('{"type":"device-key"')).length;
      assert.ok(keyLines < 2 * DEVICES, `the cut download is incomplete (${keyLines} keys of ${2 * DEVICES})`);
      assert.ok(!text.endsWith('\r\n0\r\n\r\n'), 'the chunked answer has no last chunk: the client can tell it was cut');
    } finally {
      slow.destroy();
    }

    // The slot is free again: the next download starts (its keys are checked in device-keys.test.ts).
    const next = stalledDownload();
    try {
      assert.match(await next.firstBytes, /^HTTP\/1\.1 200 /);
    } finally {
      next.destroy();
    }
    // Its reader went away: that bundle closes too (audited, not as cut).
    await waitFor('the abandoned bundle closed', async () => ((await bundleAudits()) === 2 ? true : undefined), 60_000, 200);
    assert.equal(await expiredBundleAudits(), 1);
  });

  it('online enrolment with device keys is not held up by the downloads: it is outside their cap', async () => {
    const slow = stalledDownload();
    try {
      assert.match(await slow.firstBytes, /^HTTP\/1\.1 200 /);
      const [key] = generateDeviceKeys(1);
      const body = JSON.stringify({ eui64: syntheticEui64(MAKER), keyRole: 'digitalSignature', csr: key!.csr.toString('base64'), deviceKeys: true });
      const res = await new Promise<Answer>((resolve, reject) => {
        const req = web().request({ socketPath, method: 'POST', path: '/v1/enrolments', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (c: string) => (text += c));
          r.on('end', () => resolve({ status: r.statusCode!, headers: r.headers, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(res.status, 201, res.text);
      assert.deepEqual((JSON.parse(res.text) as { deviceKeys: { keys: { role: string }[] } }).deviceKeys.keys.map((k) => k.role), ['mac', 'enc']);
    } finally {
      slow.destroy();
    }
  });
});
