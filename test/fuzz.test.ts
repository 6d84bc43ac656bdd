import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { DEFAULT_BATCH_LIMITS, parseRevocationReason } from '@fleetpki/ca';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEuiBlock } from '@fleetpki/manifest';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys, pkcs10ToC509 } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * A fuzz campaign against the running API: at least 10,000 generated bad inputs (mutated CSRs and
 * C509 requests, random ASN.1, broken manifests, huge and empty bodies, bad tokens, odd paths and
 * parameters). Every answer must be a 4xx with a stable code, the process must stay up, no business
 * row may be written, and the log must not carry a token or the HSM PIN.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
const CAMPAIGN = 10_000;
const SEED = Number(process.env.FLEETPKI_FUZZ_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: a tiny seeded PRNG so a failing case can be replayed with FLEETPKI_FUZZ_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let base: string;
let factoryToken: string;
let officerToken: string;
let adminToken: string;
const logLines: string[] = [];

const BUSINESS_TABLES = ['certificates', 'issuance_intents', 'batches', 'batch_items', 'revocations', 'approval_requests', 'api_tokens', 'devices', 'manufacturers'];
async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of BUSINESS_TABLES) out[t] = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`)).rows[0]!.n);
  return out;
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  factoryToken = await createToken(pool, 'factory', 'fuzz-maker', 'fuzz-factory');
  officerToken = await createToken(pool, 'revocation-officer', null, 'fuzz-officer');
  adminToken = await createToken(pool, 'administrator', null, 'fuzz-admin');
  const stream = new Writable({ write(chunk, _enc, done) { logLines.push(String(chunk)); done(); } });
  // Limits high enough that the campaign measures input handling, not the rate limiter or the upload
  // admission (tested apart: test/upload-limits.test.ts); its 16 clients share one factory.
  runtime = await createIssuerRuntime({ ...config, site: 'a', api: { ...config.api, rateLimitPerMinute: 10_000_000, failedAuthPerMinute: 10_000_000 }, uploads: { ...config.uploads, connections: 16, perManufacturer: 16 } }, { logger: { level: 'info', stream }, hsmSessions: 1, poolSize: 6, batchLimits: { ...DEFAULT_BATCH_LIMITS, maxLineBytes: 16 * 1024 } });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = localUrl(config, 'api', (runtime.app.server.address() as AddressInfo).port);
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

interface FuzzCase {
  readonly kind: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer | string;
}

const [validKey] = generateDeviceKeys(1);
const validCsr = validKey!.csr;
const validC509Csr = pkcs10ToC509(validCsr);
/** A device id of fuzz-maker's block (seeded: the campaign replays from its seed). */
const eui = () => `${syntheticEuiBlock('fuzz-maker')}${bytes(5).toString('hex')}`;

/** A change that is never a no-op (writing 0x81 over 0x81 would leave a valid CSR). */
function mutate(input: Buffer): Buffer {
  for (;;) {
    const out = mutateOnce(input);
    if (!out.equals(input)) return out;
  }
}

function mutateOnce(input: Buffer): Buffer {
  const out = Buffer.from(input);
  switch (int(5)) {
    case 0: // flip bits
      for (let i = 0, n = 1 + int(4); i < n; i++) out[int(out.length)]! ^= 1 << int(8);
      return out;
    case 1: // truncate
      return out.subarray(0, int(out.length));
    case 2: // overwrite a run
      bytes(1 + int(8)).copy(out, int(out.length));
      return out;
    case 3: // grow a length byte
      out[1 + int(Math.min(8, out.length - 1))] = 0x80 | int(5);
      return out;
    default: // insert garbage
      return Buffer.concat([out.subarray(0, int(out.length)), bytes(1 + int(16)), out.subarray(int(out.length))]);
  }
}

/** Random DER-looking structures: tags, lengths (some lying), nesting. */
function randomAsn1(depth = 0): Buffer {
  const tag = pick([0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0x18, 0x30, 0x31, 0xa0, 0xa3, int(256)]);
  const content = depth < 3 && (tag & 0x20) ? Buffer.concat(Array.from({ length: int(4) }, () => randomAsn1(depth + 1))) : bytes(int(40));
  const length = random() < 0.2 ? int(256) : content.length;
  return Buffer.concat([Buffer.from([tag, length < 128 ? length : 0x81, ...(length < 128 ? [] : [length & 0xff])]), content]);
}

/** Random ASN.1 that cannot be a raw P-256 point by chance (33 bytes 02/03 + x on the curve is a valid key). */
function notAPoint(): Buffer {
  const b = randomAsn1();
  return b.length === 33 || b.length === 65 ? Buffer.concat([b, Buffer.from([0])]) : b;
}

const json = (_v: unknown) => ({ 'content-type': 'application/json' });
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

function badTokenHeader(): Record<string, string> {
  const forms = [
    () => `Bearer fpk_${randomBytes(32).toString('base64url')}`,
    () => `Bearer ${randomBytes(int(80)).toString('hex')}`,
    () => `Bearer fpk_${'A'.repeat(200)}`,
    () => `Basic ${Buffer.from('admin:admin').toString('base64')}`,
    () => `Bearer fpk_' OR '1'='1`,
    () => `Bearer ${factoryToken.slice(0, -2)}xx`,
    () => 'Bearer',
    () => `bearer  ${factoryToken}x`,
    () => `Bearer fpk_\u00e9\u00e9\u00e9`,
  ];
  return { authorization: pick(forms)() };
}

function manifestLine(): string {
  return JSON.stringify({ eui64: eui(), keys: [{ role: 'digitalSignature', csr: validCsr.toString('base64') }] });
}

function brokenManifest(): string {
  const good = Array.from({ length: 1 + int(3) }, manifestLine);
  const breakers = [
    () => good.concat(good[0]!), // duplicate device
    () => good.concat('{"eui64": "zz", "keys": []}'),
    () => good.concat('{not json'),
    () => good.concat(JSON.stringify({ eui64: eui(), keys: [{ role: 'teapot', csr: validCsr.toString('base64') }] })),
    // Intake checks each CSR's structure; a CSR whose signature alone is damaged is accepted there and
    // refused by the workers (proof of possession is checked in parallel), so break the structure here.
    () => good.concat(JSON.stringify({ eui64: eui(), keys: [{ role: 'digitalSignature', csr: validCsr.subarray(0, int(validCsr.length)).toString('base64') }] })),
    () => good.concat(JSON.stringify({ eui64: eui(), keys: [{ role: 'digitalSignature', publicKey: notAPoint().toString('base64') }] })),
    () => good.concat('x'.repeat(20 * 1024)),
    () => good.concat(JSON.stringify({ eui64: eui(), keys: [{ role: 'digitalSignature', csr: validCsr.toString('base64') }], extra: true })),
    () => [bytes(64).toString('latin1')],
    () => good.concat(JSON.stringify({ eui64: eui(), keys: [{ role: 'digitalSignature', csr: randomAsn1().toString('base64') }] })),
  ];
  return pick(breakers)().join('\n') + (random() < 0.5 ? '\n' : '');
}

function randomJson(depth = 0): unknown {
  const kinds = [() => null, () => int(1e9) - 5e8, () => random() < 0.5, () => bytes(int(20)).toString('latin1'), () => 'x'.repeat(int(300)), () => -1e308, () => (depth < 2 ? Array.from({ length: int(4) }, () => randomJson(depth + 1)) : []), () => (depth < 2 ? { [bytes(4).toString('hex')]: randomJson(depth + 1) } : {})];
  return pick(kinds)();
}

/**
 * Random JSON that is not a revocation reason: a random one-byte string can be "3" (keyCompromise), and
 * revoking an unknown serial with a valid reason is a valid request (200, nothing revoked).
 */
function invalidReason(): unknown {
  for (;;) {
    const value = randomJson();
    if (typeof value !== 'string' && typeof value !== 'number') return value;
    try {
      parseRevocationReason(value);
    } catch {
      return value;
    }
  }
}

function fuzzCase(): FuzzCase {
  const generators: (() => FuzzCase)[] = [
    () => ({ kind: 'mutated CSR', method: 'POST', path: '/v1/enrolments', headers: { ...json(0), ...auth(factoryToken) }, body: JSON.stringify({ eui64: eui(), keyRole: 'digitalSignature', csr: mutate(validCsr).toString('base64') }) }),
    () => ({ kind: 'random ASN.1 as CSR', method: 'POST', path: '/v1/enrolments', headers: { ...json(0), ...auth(factoryToken) }, body: JSON.stringify({ eui64: eui(), keyRole: 'digitalSignature', csr: randomAsn1().toString('base64') }) }),
    () => ({ kind: 'random ASN.1 as public key', method: 'POST', path: '/v1/enrolments', headers: { ...json(0), ...auth(factoryToken) }, body: JSON.stringify({ eui64: eui(), keyRole: 'keyAgreement', publicKey: notAPoint().toString(pick(['base64', 'hex'])) }) }),
    () => ({ kind: 'mutated C509 request', method: 'POST', path: '/v1/enrolments', headers: { ...json(0), ...auth(factoryToken) }, body: JSON.stringify({ eui64: eui(), keyRole: 'digitalSignature', c509Csr: mutate(validC509Csr).toString('base64') }) }),
    () => ({ kind: 'random CBOR as C509 request', method: 'POST', path: '/v1/enrolments', headers: { ...json(0), ...auth(factoryToken) }, body: JSON.stringify({ eui64: eui(), keyRole: 'digitalSignature', c509Csr: Buffer.concat([Buffer.from([0x87]), bytes(int(60))]).toString('base64') }) }),
    () => ({ kind: 'random enrolment JSON', method: 'POST', path: '/v1/enrolments', headers: { ...json(0), ...auth(factoryToken) }, body: JSON.stringify({ eui64: randomJson(), keyRole: randomJson(), csr: randomJson(), [pick(['format', 'profile', 'deviceKeys', 'x'])]: randomJson() }) }),
    () => ({ kind: 'broken manifest', method: 'POST', path: '/v1/batches', headers: { 'content-type': 'application/x-ndjson', ...auth(factoryToken) }, body: brokenManifest() }),
    () => ({ kind: 'broken CSV manifest', method: 'POST', path: '/v1/batches', headers: { 'content-type': 'text/csv', ...auth(factoryToken) }, body: `eui64,keyRole,${pick(['csr', 'publicKey', 'nonsense'])}\n${eui()},digitalSignature,${randomAsn1().toString('base64')}\n${pick(['', ',,,', 'a,b'])}` }),
    () => ({ kind: 'huge body', method: 'POST', path: pick(['/v1/enrolments', '/v1/approvals', '/v1/tokens']), headers: { ...json(0), ...auth(pick([factoryToken, adminToken])) }, body: JSON.stringify({ eui64: 'x'.repeat(200_000) }) }),
    () => ({ kind: 'empty body', method: 'POST', path: pick(['/v1/enrolments', '/v1/revocations', '/v1/approvals', '/v1/tokens', '/v1/batches']), headers: { ...(random() < 0.7 ? json(0) : {}), ...auth(pick([factoryToken, officerToken, adminToken])) }, body: '' }),
    () => ({ kind: 'not JSON', method: 'POST', path: pick(['/v1/enrolments', '/v1/revocations', '/v1/tokens']), headers: { ...json(0), ...auth(pick([factoryToken, officerToken, adminToken])) }, body: bytes(1 + int(200)) }),
    () => ({ kind: 'bad token', method: pick(['GET', 'POST']), path: pick(['/v1/enrolments', '/v1/approvals', '/v1/tokens', '/v1/batches', `/v1/certificates/0a${bytes(8).toString('hex')}`]), headers: { ...json(0), ...badTokenHeader() }, body: '{}' }),
    // Random serial bytes start with a non-hex character: two random bytes can spell a valid serial ("7e").
    () => ({ kind: 'random revocation', method: 'POST', path: '/v1/revocations', headers: { ...json(0), ...auth(officerToken) }, body: JSON.stringify(pick([{ serials: [`z${bytes(int(40)).toString('latin1')}`] }, { devices: [randomJson()] }, { batch: bytes(18).toString('hex') + '/../x' }, { serials: ['0a00'], reason: invalidReason() }, { serials: [], devices: [] }])) }),
    () => ({ kind: 'random approval', method: 'POST', path: pick(['/v1/approvals', `/v1/approvals/${bytes(int(40)).toString('hex')}/approve`, `/v1/approvals/${encodeURIComponent(bytes(10).toString('latin1'))}/execute`]), headers: { ...json(0), ...auth(pick([officerToken, adminToken])) }, body: JSON.stringify({ action: randomJson(), caId: randomJson(), role: randomJson() }) }),
    () => ({ kind: 'random token request', method: 'POST', path: '/v1/tokens', headers: { ...json(0), ...auth(adminToken) }, body: JSON.stringify({ name: pick(['', 'a b', '../x', bytes(10).toString('latin1'), 'x'.repeat(100)]), role: pick(['root', 'factory', 'administrator', randomJson()]), manufacturer: pick([undefined, 'no-such-maker', '']) }) }),
    () => ({ kind: 'odd path parameter', method: 'GET', path: pick([`/v1/certificates/${encodeURIComponent(bytes(int(70)).toString('latin1'))}`, `/v1/devices/${encodeURIComponent(bytes(int(40)).toString('latin1'))}/certificates`, `/v1/batches/${bytes(int(40)).toString('hex')}`, `/v1/batches/${bytes(16).toString('hex')}/results?after=${pick(['-5', 'x', '1e99'])}`, `/v1/certificates/0a00?format=${pick(['xml', '', 'DER'])}`]), headers: auth(pick([factoryToken, officerToken])) }),
    () => ({ kind: 'wrong media type', method: 'POST', path: pick(['/v1/enrolments', '/v1/batches']), headers: { 'content-type': pick(['text/plain', 'application/xml', 'multipart/form-data', 'application/octet-stream']), ...auth(factoryToken) }, body: bytes(100) }),
  ];
  return pick(generators)();
}

describe('fuzz campaign against the running API', () => {
  it(`${CAMPAIGN} generated bad inputs: only 4xx, nothing written, process up, no secrets in the log (seed ${SEED})`, async () => {
    const before = await counts();
    const byKind = new Map<string, Map<number, number>>();
    const failures: string[] = [];
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < CAMPAIGN) {
          sent++;
          const c = fuzzCase();
          let status: number;
          let code = '';
          try {
            const res = await fetch(`${base}${c.path}`, { method: c.method, headers: c.headers, ...(c.body !== undefined && c.method !== 'GET' ? { body: c.body } : {}) });
            status = res.status;
            const text = await res.text();
            try {
              code = (JSON.parse(text) as { code?: string }).code ?? '';
            } catch {
              code = 'NOT_JSON';
            }
          } catch (err) {
            status = 0;
            code = (err as Error).message;
          }
          const counted = byKind.get(c.kind) ?? new Map<number, number>();
          counted.set(status, (counted.get(status) ?? 0) + 1);
          byKind.set(c.kind, counted);
          if (status < 400 || status >= 500 || !/^[A-Z0-9_]+$/.test(code)) failures.push(`${c.kind}: ${c.method} ${c.path.slice(0, 80)} -> ${status} ${code.slice(0, 80)} body ${String(c.body ?? '').slice(0, 120)}`);
        }
      }),
    );
    for (const [kind, statuses] of byKind) console.log(`# ${kind}: ${[...statuses].map(([s, n]) => `${s}x${n}`).join(' ')}`);
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} answers were not a 4xx with a stable code (seed ${SEED})`);
    assert.ok(sent >= CAMPAIGN);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the process is still up');
    assert.deepEqual(await counts(), before, 'nothing was written');
    const log = logLines.join('');
    const pin = readFileSync(config.sites.a.hsmPinFile, 'utf8').trim();
    for (const secret of [factoryToken, officerToken, adminToken, pin]) assert.ok(!log.includes(secret), 'a secret reached the log');
    assert.ok(!/fpk_[A-Za-z0-9_-]{20,}/.test(log), 'something token-shaped reached the log');
    assert.ok(log.length > 0, 'the log was captured');
  });
});

describe('type-confused bodies', () => {
  it('are refused, not coerced (the fuzz campaign found [[null]] taken as a revocation reason)', async () => {
    const bodies: [string, string, unknown][] = [
      ['/v1/revocations', officerToken, { serials: ['0a00'], reason: [[null]] }],
      ['/v1/revocations', officerToken, { serials: ['0a00'], reason: ['keyCompromise'] }],
      ['/v1/revocations', officerToken, { serials: '0a00' }],
      ['/v1/revocations', officerToken, { serials: [['0a00']] }],
      ['/v1/enrolments', factoryToken, { eui64: ['0011223344556677'], keyRole: 'digitalSignature', publicKey: 'x' }],
      ['/v1/approvals', adminToken, { action: ['site.switchover'] }],
    ];
    for (const [path, token, body] of bodies) {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.equal(((await res.json()) as { code: string }).code, 'REQUEST_INVALID');
    }
  });
});

describe('rate limits', () => {
  it('per address: past the limit 429 RATE_LIMITED; failed authentications: 429 AUTH_RATE_LIMITED', async () => {
    const limited = await createIssuerRuntime({ ...config, site: 'a', api: { ...config.api, rateLimitPerMinute: 20, failedAuthPerMinute: 3 } }, { logger: false, hsmSessions: 1, poolSize: 2 });
    try {
      await limited.app.listen({ host: '127.0.0.1', port: 0 });
      const url = localUrl(config, 'api', (limited.app.server.address() as AddressInfo).port);
      const bad = () => fetch(`${url}/v1/approvals`, { headers: { authorization: `Bearer fpk_${randomBytes(32).toString('base64url')}` } });
      for (let i = 0; i < 3; i++) assert.equal((await bad()).status, 401);
      const blocked = await bad();
      assert.equal(blocked.status, 429);
      assert.equal(((await blocked.json()) as { code: string }).code, 'AUTH_RATE_LIMITED');
      let last: Response | undefined;
      for (let i = 0; i < 20; i++) last = await fetch(`${url}/v1/ca/chain`);
      assert.equal(last!.status, 429);
      assert.equal(((await last!.json()) as { code: string }).code, 'RATE_LIMITED');
      assert.equal((await fetch(`${url}/healthz`)).status, 200, 'probes are never limited');
    } finally {
      await limited.close();
    }
  });
});
