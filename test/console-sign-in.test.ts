import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import type { Pool } from '@fleetpki/store';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { httpsCall, type HttpsAnswer } from './support/https.js';
import { ensureSites } from './support/sites.js';

/**
 * Login CSRF: another site's page must not be able to sign a browser into the console, as the forger or
 * as anyone (the victim would then work in the forger's session, or act without meaning to). SameSite on
 * the session cookie does not help: before sign-in there is no session. The sign-in form carries a token
 * bound to a pre-session cookie (__Host-, HttpOnly, SameSite=Strict) that the sign-in page sets; a
 * sign-in without both, or with a token of another pre-session, opens no session. Real HTTPS to an
 * issuer API in this process, with a server certificate of its own in a temporary folder.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let base: string;
let tlsDir: string;
let serverCert: Buffer;
let token: string;
let personName: string;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  personName = `sign-in-auditor-${randomBytes(3).toString('hex')}`;
  token = await createToken(pool, 'auditor', null, personName);
  tlsDir = mkdtempSync(join(tmpdir(), 'fleetpki-sign-in-tls-'));
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tlsDir, 'server.key'), '-out', join(tlsDir, 'server.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  serverCert = readFileSync(join(tlsDir, 'server.pem'));
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4, tls: { key: readFileSync(join(tlsDir, 'server.key')), cert: serverCert, clientCa: serverCert } });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = `https://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
});

after(async () => {
  await runtime?.close();
  await pool?.end();
  if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
});

const call = (path: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<HttpsAnswer> => httpsCall(`${base}${path}`, { ca: serverCert, ...options });

function cookies(answer: HttpsAnswer): Map<string, { value: string; attributes: string }> {
  const all = ([] as string[]).concat(answer.headers['set-cookie'] ?? []);
  return new Map(
    all.map((line) => {
      const [pair, ...attributes] = line.split(';');
      const at = pair!.indexOf('=');
      return [pair!.slice(0, at).trim(), { value: pair!.slice(at + 1), attributes: attributes.join(';') }];
    }),
  );
}

/** What a browser gets from the sign-in page: the pre-session cookie and the token-form's hidden CSRF field. */
async function signInPage(): Promise<{ cookie: string; csrf: string; answer: HttpsAnswer }> {
  const answer = await call('/console/sign-in');
  assert.equal(answer.status, 200, answer.body);
  const pre = [...cookies(answer)].find(([name]) => name.startsWith('__Host-') && name !== '__Host-fleetpki-console');
  assert.ok(pre, `the sign-in page sets a pre-session cookie (set-cookie: ${JSON.stringify(answer.headers['set-cookie'])})`);
  assert.match(pre[1].attributes, /Secure/);
  assert.match(pre[1].attributes, /HttpOnly/);
  assert.match(pre[1].attributes, /SameSite=Strict/);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(answer.body)?.[1];
  assert.ok(csrf, 'the sign-in form carries a CSRF token');
  return { cookie: `${pre[0]}=${pre[1].value}`, csrf, answer };
}

function postSignIn(fields: Record<string, string>, cookie?: string): Promise<HttpsAnswer> {
  return call('/console/sign-in', { method: 'POST', body: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) } });
}

async function signIns(): Promise<number> {
  return (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'console.sign-in' AND actor LIKE $1`, [`person:${personName} %`])).rows[0]!.n;
}

const refusedWithoutSession = (answer: HttpsAnswer, what: string) => {
  assert.equal(answer.status, 403, `${what}: ${answer.body.slice(0, 300)}`);
  assert.match(answer.body, /CSRF_INVALID/, what);
  assert.equal(cookies(answer).has('__Host-fleetpki-console'), false, `${what}: no session cookie`);
};

describe('console sign-in is protected against login CSRF', () => {
  it("the console's own form signs in: pre-session cookie and token from the page, then a session", async () => {
    const before = await signIns();
    const { cookie, csrf } = await signInPage();
    const answer = await postSignIn({ token, _csrf: csrf }, cookie);
    assert.equal(answer.status, 303, answer.body.slice(0, 300));
    const session = cookies(answer).get('__Host-fleetpki-console');
    assert.ok(session?.value, 'a session cookie');
    const preName = cookie.split('=')[0]!;
    assert.match(cookies(answer).get(preName)?.attributes ?? '', /Max-Age=0/, 'the pre-session ends with the sign-in');
    const home = await call('/console/approvals', { headers: { cookie: `__Host-fleetpki-console=${session.value}` } });
    assert.equal(home.status, 200, 'the session works');
    assert.equal(await signIns(), before + 1);
  });

  it('a sign-in POST without the token (what a forging page sends) is refused, and opens no session', async () => {
    const before = await signIns();
    refusedWithoutSession(await postSignIn({ token }), 'no pre-session, no token');
    const { cookie } = await signInPage();
    refusedWithoutSession(await postSignIn({ token }, cookie), 'a pre-session cookie but no token');
    refusedWithoutSession(await postSignIn({ token, _csrf: 'x'.repeat(43) }, cookie), 'a made-up token');
    assert.equal(await signIns(), before, 'nobody signed in');
  });

  it("a token from another pre-session (the forger's own) is refused", async () => {
    const before = await signIns();
    const forger = await signInPage();
    const victim = await signInPage();
    assert.notEqual(forger.csrf, victim.csrf);
    refusedWithoutSession(await postSignIn({ token, _csrf: forger.csrf }, victim.cookie), "the forger's token with the victim's pre-session");
    refusedWithoutSession(await postSignIn({ token, _csrf: forger.csrf }), "the forger's token without a pre-session");
    assert.equal(await signIns(), before, 'nobody signed in');
  });

  it('a refused sign-in answers with a sign-in form that works', async () => {
    const refused = await postSignIn({ token });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(refused.body)?.[1];
    const pre = [...cookies(refused)].find(([name]) => name.startsWith('__Host-') && name !== '__Host-fleetpki-console');
    assert.ok(csrf && pre, 'a fresh pre-session and its token');
    const answer = await postSignIn({ token, _csrf: csrf }, `${pre[0]}=${pre[1].value}`);
    assert.equal(answer.status, 303, answer.body.slice(0, 300));
  });
});
