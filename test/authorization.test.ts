import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { issueApiToken } from '@fleetpki/ca';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, syntheticEui64, syntheticRunPrefix } from '@fleetpki/manifest';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * The authorization matrix: every route x every role (and a factory of another manufacturer, and no,
 * bad, revoked or expired tokens) -> the expected status. A new route must be added here: the last
 * test compares this table with the routes the API documents.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
type Who = 'factory' | 'factory-other' | 'revocation-officer' | 'auditor' | 'administrator' | 'custodian';
const EVERYONE: readonly Who[] = ['factory', 'factory-other', 'revocation-officer', 'auditor', 'administrator', 'custodian'];

let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let base: string;
const tokens = {} as Record<Who, string>;
const fixture = { serial: '', eui64: '', batch: '', approval: '' };

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  // Every role sends unprotected CMP below from one address: more failed CMP authentications than the
  // default per-address budget allows (test/cmp.test.ts tests the budget).
  runtime = await createIssuerRuntime({ ...config, site: 'a', cmp: { ...config.cmp, authBudget: { burst: 1_000, refillPerSecond: 1_000 } } }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = localUrl(config, 'api', (runtime.app.server.address() as AddressInfo).port);
  const suffix = randomUUID().slice(0, 8);
  tokens.factory = await createToken(pool, 'factory', 'authz-maker', `authz-factory-${suffix}`);
  tokens['factory-other'] = await createToken(pool, 'factory', 'authz-other-maker', `authz-other-${suffix}`);
  for (const role of ['revocation-officer', 'auditor', 'administrator', 'custodian'] as const) tokens[role] = await createToken(pool, role, null, `authz-${role}-${suffix}`);
  // What the factory owns: one device certificate, one batch; and one approval request to read.
  const [key] = generateDeviceKeys(1);
  fixture.eui64 = syntheticEui64('authz-maker');
  const enrolled = await call('factory', 'POST', '/v1/enrolments', { eui64: fixture.eui64, keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
  assert.equal(enrolled.status, 201);
  fixture.serial = (enrolled.body as { serial: string }).serial;
  const created = await call('factory', 'POST', '/v1/batches', await manifestBody('factory'));
  assert.equal(created.status, 201, JSON.stringify(created.body));
  fixture.batch = (created.body as { id: string }).id;
  const approval = await call('administrator', 'POST', '/v1/approvals', { action: 'site.switchover' });
  fixture.approval = (approval.body as { id: string }).id;
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

/** The manufacturer whose device ids a caller's requests name (anyone else's are refused by other rules first). */
const makerOf = (who: unknown) => (who === 'factory-other' ? 'authz-other-maker' : 'authz-maker');

async function manifestBody(who: unknown): Promise<{ raw: Buffer; type: string }> {
  const path = join(ca.dir, `authz-${randomUUID()}.ndjson`);
  await generateManifest({ devices: 1, out: path, roles: ['digitalSignature'], keyForm: 'csr', threads: 1, euiPrefix: syntheticRunPrefix(makerOf(who)) });
  return { raw: readFileSync(path), type: 'application/x-ndjson' };
}

async function call(who: Who | 'anonymous' | { token: string }, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  const token = who === 'anonymous' ? undefined : typeof who === 'object' ? who.token : tokens[who];
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: string | Buffer | undefined;
  if (body && typeof body === 'object' && 'raw' in body) {
    const raw = body as { raw: Buffer; type: string };
    headers['content-type'] = raw.type;
    payload = raw.raw;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${base}${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // NDJSON and PEM stay text.
  }
  return { status: res.status, body: parsed };
}

interface RouteCase {
  readonly method: string;
  /** The route as the API documents it. */
  readonly route: string;
  readonly path: () => string;
  /** The body `who` sends (a factory's device ids are inside its manufacturer's EUI-64 ranges). */
  readonly body?: (who: Who | 'anonymous' | { token: string }) => Promise<unknown> | unknown;
  /** The expected status for each caller; a caller not listed gets 403 ROLE_FORBIDDEN. */
  readonly expect: Partial<Record<Who, number | readonly number[]>>;
  /** The error code expected where the expected status is a refusal of the route's own. */
  readonly code?: Partial<Record<Who, string>>;
}

const newEnrolment = (who: unknown) => ({ eui64: syntheticEui64(makerOf(who)), keyRole: 'digitalSignature', csr: generateDeviceKeys(1)[0]!.csr.toString('base64') });
const readersOfBatches = { factory: 200, 'factory-other': 404, auditor: 200, administrator: 200 } as const;

const ROUTES: readonly RouteCase[] = [
  { method: 'POST', route: '/v1/enrolments', path: () => '/v1/enrolments', body: newEnrolment, expect: { factory: 201, 'factory-other': 201 } },
  { method: 'GET', route: '/v1/certificates/{serial}', path: () => `/v1/certificates/${fixture.serial}`, expect: { factory: 200, 'factory-other': 404, 'revocation-officer': 200, auditor: 200, administrator: 200, custodian: 200 } },
  { method: 'GET', route: '/v1/devices/{eui64}/certificates', path: () => `/v1/devices/${fixture.eui64}/certificates`, expect: { factory: 200, 'factory-other': 404, 'revocation-officer': 200, auditor: 200, administrator: 200, custodian: 200 } },
  { method: 'POST', route: '/v1/batches', path: () => '/v1/batches', body: manifestBody, expect: { factory: 201, 'factory-other': 201 } },
  { method: 'GET', route: '/v1/batches', path: () => '/v1/batches', expect: { factory: 200, 'factory-other': 200, auditor: 200, administrator: 200 } },
  { method: 'GET', route: '/v1/batches/{id}', path: () => `/v1/batches/${fixture.batch}`, expect: readersOfBatches },
  { method: 'GET', route: '/v1/batches/{id}/results', path: () => `/v1/batches/${fixture.batch}/results`, expect: readersOfBatches },
  // The factory has no transport key registered here: 409 is "allowed, but not possible yet".
  { method: 'GET', route: '/v1/batches/{id}/device-keys', path: () => `/v1/batches/${fixture.batch}/device-keys`, expect: { factory: 409, 'factory-other': 404 } },
  { method: 'POST', route: '/v1/revocations', path: () => '/v1/revocations', body: () => ({ serials: ['0a' + randomBytes(8).toString('hex')] }), expect: { 'revocation-officer': 200, administrator: 200 } },
  { method: 'POST', route: '/v1/revocations/preview', path: () => '/v1/revocations/preview', body: () => ({ serials: ['0a' + randomBytes(8).toString('hex')] }), expect: { 'revocation-officer': 200, administrator: 200 } },
  { method: 'GET', route: '/v1/overview', path: () => '/v1/overview', expect: { 'revocation-officer': 200, auditor: 200, administrator: 200, custodian: 200 } },
  { method: 'GET', route: '/v1/drills', path: () => '/v1/drills', expect: { auditor: 200, administrator: 200, custodian: 200 } },
  // Not a test deployment here: administrators are told drills start from the API only there.
  { method: 'POST', route: '/v1/drills', path: () => '/v1/drills', body: () => ({ kind: 'failover' }), expect: { administrator: 403 }, code: { administrator: 'DRILLS_DISABLED' } },
  { method: 'GET', route: '/v1/audit/verify', path: () => '/v1/audit/verify', expect: { auditor: 200, administrator: 200, custodian: 200 } },
  { method: 'GET', route: '/v1/approvals', path: () => '/v1/approvals', expect: { 'revocation-officer': 200, auditor: 200, administrator: 200, custodian: 200 } },
  { method: 'GET', route: '/v1/approvals/{id}', path: () => `/v1/approvals/${fixture.approval}`, expect: { 'revocation-officer': 200, auditor: 200, administrator: 200, custodian: 200 } },
  // Who may request which action is the dual-control table: site.switchover is for administrators.
  { method: 'POST', route: '/v1/approvals', path: () => '/v1/approvals', body: () => ({ action: 'site.switchover' }), expect: { administrator: 201 } },
  { method: 'POST', route: '/v1/approvals/{id}/approve', path: () => `/v1/approvals/${randomUUID()}/approve`, expect: { 'revocation-officer': 404, administrator: 404, custodian: 404 } },
  { method: 'POST', route: '/v1/approvals/{id}/execute', path: () => `/v1/approvals/${randomUUID()}/execute`, expect: { 'revocation-officer': 404, administrator: 404, custodian: 404 } },
  { method: 'GET', route: '/v1/tokens', path: () => '/v1/tokens', expect: { administrator: 200, auditor: 200 } },
  { method: 'POST', route: '/v1/tokens', path: () => '/v1/tokens', body: () => ({ name: `authz-created-${randomUUID().slice(0, 8)}`, role: 'factory', manufacturer: 'authz-maker', expiresDays: 1 }), expect: { administrator: 201 } },
  { method: 'GET', route: '/v1/people', path: () => '/v1/people', expect: { administrator: 200, auditor: 200 } },
  { method: 'POST', route: '/v1/people/{name}/role', path: () => `/v1/people/nobody-${randomUUID().slice(0, 8)}/role`, body: () => ({ role: 'auditor', approval: randomUUID() }), expect: { administrator: 404 } },
  { method: 'POST', route: '/v1/tokens/{id}/revoke', path: () => `/v1/tokens/${randomUUID()}/revoke`, expect: { administrator: 404 } },
  { method: 'GET', route: '/v1/est/requests', path: () => '/v1/est/requests', expect: { administrator: 200, auditor: 200 } },
  { method: 'POST', route: '/v1/est/requests/{id}/approve', path: () => `/v1/est/requests/${randomUUID()}/approve`, expect: { administrator: 404 } },
  { method: 'POST', route: '/v1/est/requests/{id}/refuse', path: () => `/v1/est/requests/${randomUUID()}/refuse`, expect: { administrator: 404 } },
  // 409 when this deployment has no device MAC master key yet (CMP secrets are derived from it).
  { method: 'POST', route: '/v1/cmp/secrets', path: () => '/v1/cmp/secrets', body: () => ({ reference: `authz-${randomUUID().slice(0, 8)}`, manufacturer: 'authz-maker' }), expect: { administrator: [201, 409] } },
  { method: 'DELETE', route: '/v1/cmp/secrets/{reference}', path: () => `/v1/cmp/secrets/nobody-${randomUUID().slice(0, 8)}`, expect: { administrator: 404 } },
];
/** CMP: each message carries its own protection (MAC or signature); tokens play no part. test/cmp.test.ts covers who may do what. */
const MESSAGE_PROTECTED = ['POST /.well-known/cmp', 'POST /.well-known/cmp/p/{label}'];
/** EST: HTTPS only, so over this test's plain HTTP every caller gets 403 EST_TLS_REQUIRED; test/est.test.ts covers who may do what. */
const TLS_ONLY = ['GET /.well-known/est/{label}/cacerts', 'GET /.well-known/est/{label}/csrattrs', 'POST /.well-known/est/{label}/simpleenroll', 'POST /.well-known/est/{label}/simplereenroll'].flatMap((r) => [r, r.replace('/{label}', '')]);
const PUBLIC = [
  ['GET', '/v1/ca/chain'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
] as const;

describe('authorization matrix', () => {
  for (const route of ROUTES) {
    it(`${route.method} ${route.route}: every role, own and other manufacturer, no or bad token`, async () => {
      for (const who of EVERYONE) {
        const { status, body } = await call(who, route.method, route.path(), await route.body?.(who));
        const expected = route.expect[who] ?? 403;
        const allowed = Array.isArray(expected) ? expected : [expected];
        assert.ok(allowed.includes(status), `${who}: ${route.method} ${route.route} gave ${status} ${JSON.stringify(body).slice(0, 200)}, expected ${allowed.join('|')}`);
        // A 403 the table expects for this caller is the route's own refusal (DRILLS_DISABLED, say), not the role's.
        if (status === 403 && route.expect[who] === undefined) assert.equal((body as { code: string }).code, 'ROLE_FORBIDDEN', `${who}: ${JSON.stringify(body)}`);
        if (route.code?.[who]) assert.equal((body as { code: string }).code, route.code[who], `${who}: ${JSON.stringify(body)}`);
      }
      const anonymous = await call('anonymous', route.method, route.path(), await route.body?.('anonymous'));
      assert.equal(anonymous.status, 401);
      assert.equal((anonymous.body as { code: string }).code, 'AUTH_REQUIRED');
      const forged = await call({ token: `fpk_${randomBytes(32).toString('base64url')}` }, route.method, route.path(), await route.body?.('anonymous'));
      assert.equal(forged.status, 401);
      assert.equal((forged.body as { code: string }).code, 'AUTH_INVALID');
    });
  }

  it("another manufacturer's records look exactly like records that do not exist", async () => {
    const pairs: [string, string][] = [
      [`/v1/certificates/${fixture.serial}`, `/v1/certificates/0a${randomBytes(8).toString('hex')}`],
      [`/v1/batches/${fixture.batch}`, `/v1/batches/${randomUUID()}`],
      [`/v1/batches/${fixture.batch}/results`, `/v1/batches/${randomUUID()}/results`],
    ];
    for (const [theirs, nobodys] of pairs) {
      const a = await call('factory-other', 'GET', theirs);
      const b = await call('factory-other', 'GET', nobodys);
      assert.equal(a.status, b.status);
      assert.equal((a.body as { code: string }).code, (b.body as { code: string }).code);
    }
  });

  it('revoked and expired tokens are refused like unknown ones, and every refusal is audited', async () => {
    const revokedToken = await issueApiToken(pool, { site: 'a', actor: 'test', name: `authz-revoked-${randomUUID().slice(0, 8)}`, role: 'auditor', manufacturerId: null });
    const { rows } = await pool.query<{ id: string }>('SELECT id FROM api_tokens ORDER BY created_at DESC LIMIT 1');
    await pool.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [rows[0]!.id]);
    const expiredToken = await issueApiToken(pool, { site: 'a', actor: 'test', name: `authz-expired-${randomUUID().slice(0, 8)}`, role: 'auditor', manufacturerId: null, expiresDays: 1 });
    await pool.query(`UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE name LIKE 'authz-expired-%'`);
    const before = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM audit_events WHERE action IN ('auth.failed', 'auth.forbidden')`)).rows[0]!.n);
    for (const token of [revokedToken, expiredToken]) {
      const res = await call({ token }, 'GET', '/v1/approvals');
      assert.equal(res.status, 401);
      assert.equal((res.body as { code: string }).code, 'AUTH_INVALID');
    }
    assert.equal((await call('factory', 'GET', '/v1/tokens')).status, 403);
    const afterCount = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM audit_events WHERE action IN ('auth.failed', 'auth.forbidden')`)).rows[0]!.n);
    assert.equal(afterCount - before, 3);
    const { rows: last } = await pool.query<{ details: Record<string, unknown> }>(`SELECT details FROM audit_events WHERE action = 'auth.failed' ORDER BY seq DESC LIMIT 1`);
    assert.ok(!JSON.stringify(last[0]!.details).includes('fpk_'), 'no token in the audit log');
  });

  it('public routes answer without a token', async () => {
    for (const [method, path] of PUBLIC) assert.equal((await call('anonymous', method, path)).status, 200, path);
  });

  it('EST over plain HTTP: 403 EST_TLS_REQUIRED for every caller, before any credential is looked at', async (t) => {
    if (config.tls.parts.api) return t.skip('the API serves HTTPS in this run (scripts/test-secure.sh): there is no plain HTTP to refuse EST on');
    for (const route of TLS_ONLY) {
      const [method, path] = route.split(' ') as [string, string];
      for (const who of [...EVERYONE, 'anonymous'] as const) {
        const { status, body } = await call(who, method, path.replace('{label}', 'compact-signing'), method === 'POST' ? 'MIIB' : undefined);
        assert.equal(status, 403, `${who}: ${route}`);
        assert.equal((body as { code: string }).code, 'EST_TLS_REQUIRED', `${who}: ${route}`);
      }
    }
  });

  it('CMP: a message without valid protection gets a CMP error (badMessageCheck or badDataFormat) whoever sends it, token or not', async () => {
    for (const route of MESSAGE_PROTECTED) {
      const path = route.split(' ')[1]!.replace('{label}', 'compact-signing');
      for (const who of [...EVERYONE, 'anonymous'] as const) {
        const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/pkixcmp', ...(who === 'anonymous' ? {} : { authorization: `Bearer ${tokens[who]}` }) }, body: Buffer.from('30030201', 'hex') });
        assert.equal(res.status, 200, `${who}: ${route}`);
        assert.equal(res.headers.get('content-type'), 'application/pkixcmp', `${who}: ${route}`);
      }
    }
  });

  it('the table covers every route the API documents', async () => {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    const covered = new Set([...ROUTES.map((r) => `${r.method} ${r.route}`), ...PUBLIC.map(([m, p]) => `${m} ${p}`), ...TLS_ONLY, ...MESSAGE_PROTECTED]);
    const missing = documented.filter((r) => !covered.has(r) && !r.includes('/docs'));
    assert.deepEqual(missing, []);
  });
});
