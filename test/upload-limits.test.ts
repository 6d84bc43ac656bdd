import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import type { PoolClient } from '@fleetpki/store';
import { syntheticEui64 } from '@fleetpki/manifest';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, type Pool } from './support/sites.js';

/**
 * Issue 40 (2): a factory's batch upload took a connection of the API's one pool and opened its
 * transaction as it started, with no deadline; uploads trickling a byte at a time held every
 * connection, and an officer's revocation, a certificate lookup and /readyz failed after the pool's
 * 5 s wait. Here the general pool has 4 connections and 6 uploads trickle at once.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
const GENERAL_CONNECTIONS = 4;
const UPLOADS = { connections: 6, perManufacturer: 2, idleSeconds: 8, progressBytes: 1024, maxSeconds: 600 };
const TRICKLERS = ['trickle-1', 'trickle-2', 'trickle-3'];

let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let port: number;
const factory: Record<string, string> = {};
let officerToken: string;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  for (const m of [...TRICKLERS, 'steady-maker', 'fourth-maker']) factory[m] = await createToken(pool, 'factory', m);
  officerToken = await createToken(pool, 'revocation-officer', null, `upload-limits-officer-${randomBytes(3).toString('hex')}`);
  runtime = await createIssuerRuntime({ ...config, site: 'a', uploads: UPLOADS }, { logger: false, hsmSessions: 1, poolSize: GENERAL_CONNECTIONS });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  port = (runtime.app.server.address() as AddressInfo).port;
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: { code?: string; message?: string; [k: string]: unknown };
}

/** https when the configuration gives the API a pair (scripts/test-secure.sh), else http. */
const web = () => (config.tls.parts.api ? https : http);

/** One HTTP request over its own connection; JSON in and out. */
function call(method: string, path: string, token: string | null, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = web().request({ host: '127.0.0.1', port, method, path, agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text ? (JSON.parse(text) as Answer['body']) : {} }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A manifest line for a device inside `maker`'s EUI-64 block (createToken registers it). */
function deviceLine(maker: string): string {
  const [key] = generateDeviceKeys(1);
  return JSON.stringify({ eui64: syntheticEui64(maker), keys: [{ role: 'digitalSignature', csr: key!.csr.toString('base64') }] });
}

interface Trickle {
  /** The server's answer, whenever it comes (undefined: the connection closed without one). */
  readonly answer: Promise<Answer | undefined>;
  /** True once the server has answered (or closed the connection). */
  done(): boolean;
  stop(): void;
}

/**
 * A manifest upload as a slow attacker sends it: a first valid line at once, then one byte every
 * 200 ms, far less than the server asks for in its idle window.
 */
function trickleUpload(maker: string): Trickle {
  const token = factory[maker]!;
  let finished = false;
  const req = web().request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/batches', agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
  const timer = setInterval(() => {
    if (!req.destroyed && !req.writableEnded) req.write(' ');
  }, 200);
  const answer = new Promise<Answer | undefined>((resolve) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text ? (JSON.parse(text) as Answer['body']) : {} }));
      res.on('error', () => resolve(undefined));
    });
    // The server may close the connection after answering, while this side is still writing.
    req.on('error', () => resolve(undefined));
    req.on('close', () => setTimeout(() => resolve(undefined), 100));
  }).finally(() => {
    finished = true;
    clearInterval(timer);
  });
  req.write(deviceLine(maker) + '\n');
  return {
    answer,
    done: () => finished,
    stop: () => {
      clearInterval(timer);
      req.destroy();
    },
  };
}

function within<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

async function batchesOf(manufacturers: readonly string[]): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM batches WHERE manufacturer_id = ANY($1)', [manufacturers]);
  return rows[0]!.n;
}

/** Uploads being COPYed into this run's database right now. */
async function uploadsInProgress(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY \"batch_items\"%' AND state = 'active'");
  return rows[0]!.n;
}

describe('slow batch uploads do not stall the API', () => {
  it('while more uploads trickle than the API has connections, enrolment, a certificate lookup, a revocation and /readyz answer; a further upload is refused with 429; the trickling ones are cut by the idle deadline and leave nothing behind', async () => {
    const trickles = TRICKLERS.flatMap((m) => [trickleUpload(m), trickleUpload(m)]);
    try {
      // Every upload has its first line in, and as many as the server holds are being copied.
      await within('uploads started', (async () => {
        while ((await uploadsInProgress()) < GENERAL_CONNECTIONS) await new Promise((r) => setTimeout(r, 100));
      })(), 30_000);

      const [key] = generateDeviceKeys(1);
      const eui64 = syntheticEui64('steady-maker');
      const enrolled = await within('enrolment', call('POST', '/v1/enrolments', factory['steady-maker']!, { eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') }), 30_000);
      assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
      const serial = enrolled.body.serial as string;
      const looked = await within('certificate lookup', call('GET', `/v1/certificates/${serial}`, officerToken), 30_000);
      assert.equal(looked.status, 200, JSON.stringify(looked.body));
      const revoked = await within('revocation', call('POST', '/v1/revocations', officerToken, { serials: [serial], reason: 'keyCompromise' }), 30_000);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.equal(revoked.body.revoked, 1);
      const ready = await within('/readyz', call('GET', '/readyz', null), 30_000);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));

      // One more upload from a manufacturer that already has its two in progress: refused before its body is read.
      const extra = await within('a third upload of one manufacturer', trickleUpload('trickle-1').answer, 30_000);
      assert.equal(extra?.status, 429, JSON.stringify(extra?.body));
      assert.equal(extra.body.code, 'UPLOADS_PER_MANUFACTURER');
      assert.match(String(extra.headers['retry-after']), /^[1-9][0-9]*$/);
      assert.equal(extra.headers.connection, 'close', 'the body is never read: the connection closes');
      // Every upload connection is taken: another manufacturer's upload is told to come back.
      const full = await within('an upload beyond the server-wide limit', trickleUpload('fourth-maker').answer, 30_000);
      assert.equal(full?.status, 503, JSON.stringify(full?.body));
      assert.equal(full.body.code, 'UPLOADS_BUSY');
      assert.match(String(full.headers['retry-after']), /^[1-9][0-9]*$/);
      assert.equal(full.headers.connection, 'close');

      // All of the above was answered while the uploads were still open.
      assert.deepEqual(trickles.map((t) => t.done()), trickles.map(() => false), 'the slow uploads were still open');

      // The idle deadline cuts each slow upload with a clear error; its transaction is rolled back.
      const answers = await within('the slow uploads cut', Promise.all(trickles.map((t) => t.answer)), (UPLOADS.idleSeconds + 30) * 1000);
      for (const a of answers) {
        assert.equal(a?.status, 408, JSON.stringify(a?.body));
        assert.equal(a.body.code, 'UPLOAD_STALLED');
        assert.match(a.body.message!, /less than 1024 bytes in 8 s/);
        assert.equal(a.headers.connection, 'close');
      }
      assert.equal(await batchesOf(TRICKLERS), 0, 'no batch recorded for a cut upload');
      assert.equal(await uploadsInProgress(), 0);
    } finally {
      for (const t of trickles) t.stop();
    }

    // The upload connections came back: a manifest sent at a normal pace is accepted.
    const accepted = await new Promise<Answer>((resolve, reject) => {
      const req = web().request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/batches', agent: false, headers: { authorization: `Bearer ${factory['trickle-1']!}`, 'content-type': 'application/x-ndjson' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) as Answer['body'] }));
      });
      req.on('error', reject);
      req.end(`${deviceLine('trickle-1')}\n${deviceLine('trickle-1')}\n`);
    });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    assert.equal(accepted.body.devices, 2);
  });

  it('revocation, certificate lookups and /readyz have connections of their own: with every general connection taken they still answer', async () => {
    const [key] = generateDeviceKeys(1);
    const enrolled = await call('POST', '/v1/enrolments', factory['steady-maker']!, { eui64: syntheticEui64('steady-maker'), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
    const serial = enrolled.body.serial as string;
    const held: PoolClient[] = [];
    try {
      for (let i = 0; i < GENERAL_CONNECTIONS; i++) held.push(await runtime.pool.connect());
      const looked = await within('certificate lookup', call('GET', `/v1/certificates/${serial}`, officerToken), 30_000);
      assert.equal(looked.status, 200, JSON.stringify(looked.body));
      const revoked = await within('revocation', call('POST', '/v1/revocations', officerToken, { serials: [serial], reason: 'keyCompromise' }), 30_000);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.equal(revoked.body.revoked, 1);
      const ready = await within('/readyz', call('GET', '/readyz', null), 30_000);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
    } finally {
      for (const c of held) c.release();
    }
  });
});
