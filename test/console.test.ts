import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, auditCheckpointFile, ensureAuditKey, loadSiteIssuer, sealAuditLog } from '@fleetpki/ca';
import { FleetApiClient } from '@fleetpki/client';
import { createIssuerRuntime, readTlsMaterial, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, syntheticRunPrefix } from '@fleetpki/manifest';
import { recordDrillRun, type Pool } from '@fleetpki/store';
import { cli } from './support/cli.js';
import { createToken, ensureCa, opensslAsync, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, localUrl, waitFor } from './support/sites.js';
import { httpsCall, type HttpsAnswer } from './support/https.js';
import { createStatusSite, type StatusSiteRuntime } from './support/status.js';

/**
 * The operator console in a real browser (Debian's chromium, driven by playwright-core) against an
 * issuer API over HTTPS: sign-in and sessions, two-person revocation of a batch, live batch progress,
 * a factory's view, the audit page, and axe on every screen. Screenshots go to a temporary folder, or to
 * FLEETPKI_CONSOLE_SCREENSHOTS: `pnpm docs:screenshots` (scripts/docs-screenshots.sh) copies them into
 * docs/console/ after a passing run; a test never writes into the repository.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
const MAKER = 'console-maker';
const OTHER_MAKER = 'console-other-maker';
const CHUNK = 1_000;
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let status: StatusSiteRuntime;
let statusUrl: string;
let base: string;
let browser: Browser;
let issuer: ChunkIssuer;
let factory: FleetApiClient;
let otherFactory: FleetApiClient;
const tokens: Record<string, string> = {};
const screenshotDir = process.env.FLEETPKI_CONSOLE_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'fleetpki-console-'));
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

type Answer = HttpsAnswer;

/** A raw HTTPS request (what a forging site or a script could send), trusting the organisation CA. */
function raw(path: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return httpsCall(`${base}${path}`, { ca: readFileSync(join(config.api.tlsDir, 'clients-ca.pem')), method: options.method ?? 'GET', ...(options.body !== undefined ? { body: options.body } : {}), headers: options.headers ?? {} });
}

/**
 * Signs in with a token over raw HTTPS, as the sign-in page's form does (its pre-session cookie and CSRF
 * token first: test/console-sign-in.test.ts); returns the session cookie (name=value).
 */
async function rawSignIn(token: string): Promise<{ answer: Answer; cookie: string }> {
  const page = await raw('/console/sign-in');
  const preSession = ([] as string[]).concat(page.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  const answer = await raw('/console/sign-in', { method: 'POST', body: new URLSearchParams({ token, _csrf: csrf }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: preSession } });
  const set = ([] as string[]).concat(answer.headers['set-cookie'] ?? []);
  return { answer, cookie: (set.find((c) => c.startsWith('__Host-fleetpki-console=')) ?? '').split(';')[0]! };
}

async function signedInPage(token: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/sign-in$/, 'a page of the console without a session leads to sign-in');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  assert.doesNotMatch(page.url(), /sign-in/, `signed in (${await page.locator('main').innerText()})`);
  return { context, page };
}

/** Axe on the page as it is: no serious or critical violation. */
async function assertAccessible(page: Page, screen: string): Promise<void> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: { id: string; impact: string | null; nodes: unknown[] }[] }> } }).axe;
    const result = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious, [], `${screen}: axe finds ${JSON.stringify(serious)}`);
}

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: false });
}

async function submitBatch(client: FleetApiClient, manufacturer: string, devices: number): Promise<string> {
  const path = join(ca.dir, `console-${randomBytes(4).toString('hex')}.ndjson`);
  await generateManifest({ devices, out: path, roles: ['digitalSignature'], keyForm: 'csr', threads: 2, euiPrefix: syntheticRunPrefix(manufacturer) });
  const { batch } = await client.submitBatch(path, {});
  return batch.id;
}

async function issueAll(batchId: string, devices: number): Promise<void> {
  for (let chunk = 0; chunk * CHUNK < devices; chunk++) await issuer.issue(batchId, chunk);
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  tokens.admin = await createToken(pool, 'administrator', null, 'console-admin');
  const server = await cli(['tls', 'server'], { FLEETPKI_TOKEN: tokens.admin });
  assert.equal(server.code, 0, server.stderr);
  tokens.officerA = await createToken(pool, 'revocation-officer', null, 'console-officer-a');
  tokens.officerB = await createToken(pool, 'revocation-officer', null, 'console-officer-b');
  tokens.auditor = await createToken(pool, 'auditor', null, 'console-auditor');
  tokens.factory = await createToken(pool, 'factory', MAKER, 'console-factory');
  tokens.otherFactory = await createToken(pool, 'factory', OTHER_MAKER, 'console-other-factory');
  // A revocation of more than 10 certificates needs a second officer.
  runtime = await createIssuerRuntime({ ...config, site: 'a', dualControl: { ...config.dualControl, revocationThreshold: 10 } }, { logger: false, hsmSessions: 1, poolSize: 6, tls: readTlsMaterial(config.api.tlsDir) });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = `https://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
  status = await createStatusSite({ ...config, site: 'a' }, { logger: false, tickEveryMs: 200 });
  await status.app.listen({ host: '127.0.0.1', port: 0 });
  statusUrl = localUrl(config, 'status', (status.app.server.address() as AddressInfo).port);
  const site = await loadSiteIssuer({ ...config, site: 'a' }, pool, runtime.keyStore);
  issuer = ChunkIssuer.forPool(pool, site.ca, 'a', site.serialPrefix);
  const clientCa = readFileSync(join(config.api.tlsDir, 'clients-ca.pem'));
  factory = new FleetApiClient(base, tokens.factory, { ca: clientCa });
  otherFactory = new FleetApiClient(base, tokens.otherFactory, { ca: clientCa });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  await browser?.close();
  await status?.close();
  await runtime?.close();
  await pool?.end();
});

describe('console sessions', () => {
  it('a wrong token is refused with its code and no cookie; a good one gives a Secure, HttpOnly, SameSite=Strict session cookie', async () => {
    const bad = await rawSignIn('fpk_not-a-token');
    assert.equal(bad.answer.status, 401);
    assert.match(bad.answer.body, /AUTH_INVALID/);
    assert.equal(bad.cookie, '', 'no session cookie (only the sign-in page\'s pre-session, for the next try)');
    const good = await rawSignIn(tokens.auditor!);
    assert.equal(good.answer.status, 303);
    const cookie = ([] as string[]).concat(good.answer.headers['set-cookie'] ?? []).find((c) => c.startsWith('__Host-fleetpki-console='))!;
    assert.match(cookie, /^__Host-fleetpki-console=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'console.sign-in' AND actor LIKE 'person:console-auditor via token:%'`);
    assert.ok(rows[0]!.n >= 1, 'the sign-in is in the audit log');
  });

  it('a forged cross-site POST with the session cookie but no CSRF token changes nothing, on the console and on the API', async () => {
    const { cookie } = await rawSignIn(tokens.officerA!);
    const eui = randomBytes(8).toString('hex'); // nobody's: the forged revocation must not even look it up
    const form = await raw('/console/revocations', { method: 'POST', body: new URLSearchParams({ kind: 'devices', list: eui, reason: 'keyCompromise', step: 'submit' }).toString(), headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 403);
    assert.match(form.body, /CSRF_INVALID/);
    const api = await raw('/v1/revocations', { method: 'POST', body: JSON.stringify({ devices: [eui] }), headers: { cookie, 'content-type': 'application/json' } });
    assert.equal(api.status, 403);
    assert.match(api.body, /CSRF_INVALID/);
    const read = await raw('/v1/approvals', { headers: { cookie } });
    assert.equal(read.status, 200, 'reading with the session needs no CSRF token');
  });

  it('revoking the token behind a session ends the session at its next request', async () => {
    const name = `console-auditor-${randomBytes(3).toString('hex')}`;
    const token = await createToken(pool, 'auditor', null, name);
    const { cookie } = await rawSignIn(token);
    assert.equal((await raw('/console/audit', { headers: { cookie } })).status, 200);
    await pool.query('UPDATE api_tokens SET revoked_at = now() WHERE name = $1', [name]);
    const after = await raw('/console/audit', { headers: { cookie } });
    assert.equal(after.status, 303);
    assert.equal(after.headers.location, '/console/sign-in');
  });

  it('every console page and form without a session leads to sign-in and does nothing', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    const pages = ['/console', '/console/batches', `/console/batches/${id}`, `/console/batches/${id}/progress`, '/console/approvals', '/console/revocations', '/console/devices?q=0011223344556677', '/console/audit?verify=1', '/console/drills', `/console/certificates/0a11/download?format=pem`];
    const forms = [`/console/approvals/${id}/approve`, `/console/approvals/${id}/execute`, '/console/revocations', '/console/sign-out'];
    for (const path of pages) {
      const res = await raw(path);
      assert.deepEqual([res.status, res.headers.location], [303, '/console/sign-in'], `GET ${path}`);
    }
    for (const path of forms) {
      const res = await raw(path, { method: 'POST', body: 'kind=devices&list=0011223344556677&step=submit', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.deepEqual([res.status, res.headers.location], [303, '/console/sign-in'], `POST ${path}`);
    }
  });

  it('over plain HTTP there is no sign-in: the console names what is missing', async () => {
    // inject: the same server, reached without TLS (as a plain listener or a proxy in clear would).
    const res = await runtime.app.inject({ method: 'POST', url: '/console/sign-in', payload: `token=${tokens.auditor}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(res.statusCode, 403);
    assert.match(res.body, /CONSOLE_TLS_REQUIRED/);
    assert.equal(res.headers['set-cookie'], undefined);
  });
});

describe('console in a browser', () => {
  let batchId: string;
  const devices = 2_500;

  it('a batch submitted through the API shows live progress and ends complete', async () => {
    batchId = await submitBatch(factory, MAKER, devices);
    const { context, page } = await signedInPage(tokens.factory!);
    try {
      await page.goto(`${base}/console/batches/${batchId}`);
      assert.equal(await page.getByTestId('batch-issued').innerText(), '0');
      await screenshot(page, 'batch-running');
      await issuer.issue(batchId, 0);
      // The page refreshes its figures by itself (console.js), no reload.
      await page.getByTestId('batch-issued').filter({ hasText: '1000' }).waitFor({ timeout: 15_000 });
      await issueAll(batchId, devices);
      await page.getByTestId('batch-status').filter({ hasText: 'complete' }).waitFor({ timeout: 15_000 });
      assert.equal(await page.getByTestId('batch-issued').innerText(), String(devices));
      // The throughput chart, drawn from the chunks' completion times, ends at the whole batch.
      assert.match((await page.locator('svg[role=img] title').first().textContent()) ?? '', new RegExp(`^Certificates issued over time: ${devices} of ${devices} after`));
      assert.equal(await page.locator('svg[role=img] polyline').count(), 1);
      await assertAccessible(page, 'batch detail');
      await screenshot(page, 'batch-complete');
    } finally {
      await context.close();
    }
  });

  it('a factory sees only its own batches and devices', async () => {
    const otherBatch = await submitBatch(otherFactory, OTHER_MAKER, 5);
    await issueAll(otherBatch, 5);
    const { context, page } = await signedInPage(tokens.factory!);
    try {
      assert.match(page.url(), /\/console\/batches$/, 'a factory lands on its batches');
      const list = await page.locator('main').innerText();
      assert.ok(list.includes(batchId), 'its own batch is listed');
      assert.ok(!list.includes(otherBatch), "the other maker's batch is not");
      await assertAccessible(page, 'batches');
      await screenshot(page, 'batches');
      const res = await page.goto(`${base}/console/batches/${otherBatch}`);
      assert.equal(res?.status(), 404);
      assert.match(await page.locator('main').innerText(), /BATCH_NOT_FOUND/);
      const otherDevice = (await pool.query<{ eui64: Buffer }>('SELECT eui64 FROM certificates WHERE batch_id = $1 LIMIT 1', [otherBatch])).rows[0]!.eui64.toString('hex');
      await page.goto(`${base}/console/devices?q=${otherDevice}`);
      assert.match(await page.locator('main').innerText(), /No certificate found/);
      const ownDevice = (await pool.query<{ eui64: Buffer }>('SELECT eui64 FROM certificates WHERE batch_id = $1 LIMIT 1', [batchId])).rows[0]!.eui64.toString('hex');
      await page.goto(`${base}/console/devices?q=${ownDevice}`);
      assert.match(await page.locator('main').innerText(), /good/);
      await assertAccessible(page, 'devices');
      await screenshot(page, 'devices');
      // Screens of other roles are refused by the API behind them, with its code.
      const overview = await page.goto(`${base}/console/audit?verify=1`);
      assert.equal(overview?.status(), 403);
      assert.match(await page.locator('main').innerText(), /ROLE_FORBIDDEN/);
    } finally {
      await context.close();
    }
  });

  it('officer A requests the revocation of a whole batch; A cannot approve it; B approves; A executes; OCSP says revoked', async () => {
    const a = await signedInPage(tokens.officerA!);
    const b = await signedInPage(tokens.officerB!);
    try {
      const overview = await a.page.locator('main').innerText();
      assert.match(overview, /This site: site a\s+active/);
      assert.match(overview, /Standbys streaming from this site[\s\S]*streaming\s+sync/, 'site b streams synchronously from a');
      await assertAccessible(a.page, 'overview');
      await screenshot(a.page, 'overview');
      await a.page.goto(`${base}/console/revocations`);
      // A list as a file, as an inventory exports it: three meters of the batch, previewed.
      const three = (await pool.query<{ eui64: Buffer }>('SELECT eui64 FROM certificates WHERE batch_id = $1 ORDER BY serial LIMIT 3', [batchId])).rows.map((r) => r.eui64.toString('hex').toUpperCase());
      const listFile = writeCaFile(ca, `console-list-${randomBytes(3).toString('hex')}.txt`, `${three.join('\n')}\n`);
      await a.page.getByLabel('Revoke by').selectOption('devices');
      await a.page.getByLabel('Or a file with the list').setInputFiles(listFile);
      await a.page.getByRole('button', { name: 'Preview: count certificates' }).click();
      assert.match(await a.page.getByTestId('revocation-preview').innerText(), /\b3\s+certificate\(s\) would be revoked \(3 named, 0 already revoked\)/);
      await a.page.getByLabel('Devices, serials or batch id').fill('');
      await a.page.getByLabel('Revoke by').selectOption('batch');
      await a.page.getByLabel('Devices, serials or batch id').fill(batchId);
      await a.page.getByRole('button', { name: 'Preview: count certificates' }).click();
      const preview = a.page.getByTestId('revocation-preview');
      assert.match(await preview.innerText(), new RegExp(`${devices}\\s+certificate\\(s\\) would be revoked`));
      assert.match(await preview.innerText(), /a second person must approve/);
      assert.equal((await pool.query('SELECT 1 FROM revocations r JOIN certificates c ON c.serial = r.serial WHERE c.batch_id = $1', [batchId])).rowCount, 0, 'the preview revoked nothing');
      await assertAccessible(a.page, 'revocation preview');
      await screenshot(a.page, 'revocation-preview');
      await a.page.getByRole('button', { name: 'Request revocation' }).click();
      assert.match(await a.page.locator('main').innerText(), /approval request \w+ is open/);

      await a.page.goto(`${base}/console/approvals`);
      const row = a.page.locator('tr', { hasText: batchId }).first();
      await row.getByRole('button', { name: /^Approve/ }).click();
      assert.match(await a.page.locator('[role=alert]').innerText(), /APPROVAL_/, "A's own approval is refused");
      await assertAccessible(a.page, 'approvals');
      await screenshot(a.page, 'approvals');

      await b.page.goto(`${base}/console/approvals`);
      // What the approver sees: how many certificates, from which batch.
      assert.match(await b.page.locator('tr', { hasText: batchId }).first().innerText(), new RegExp(`Now: ${devices} certificate\\(s\\) to revoke \\(0 already revoked\\), from batch ${batchId.slice(0, 8)} \\(${devices}\\)`));
      await b.page.locator('tr', { hasText: batchId }).first().getByRole('button', { name: /^Approve/ }).click();
      assert.match(await b.page.locator('[role=status]').innerText(), /Approved/);

      await a.page.goto(`${base}/console/approvals`);
      await a.page.locator('tr', { hasText: batchId }).first().getByRole('button', { name: /^Execute/ }).click();
      assert.match(await a.page.locator('[role=status]').innerText(), /Executed/);

      const { rows } = await pool.query<{ der: Buffer }>('SELECT der FROM certificates WHERE batch_id = $1 LIMIT 1', [batchId]);
      const meter = writeCaFile(ca, `console-meter-${randomBytes(3).toString('hex')}.der`, rows[0]!.der);
      const pem = meter.replace(/\.der$/, '.pem');
      await opensslAsync(['x509', '-inform', 'DER', '-in', meter, '-out', pem]);
      const answer = await waitFor(
        'OCSP to say revoked',
        async () => {
          const out = await opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-cert', pem, '-url', `${statusUrl}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
          return /: revoked/.test(out) ? out : undefined;
        },
        20_000,
        250,
      );
      assert.match(answer, /Reason: keyCompromise/);
      assert.match(answer, /Response verify OK/);
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });

  it('the audit page reports an intact chain, then the row a test alters', async () => {
    // Sealed as the status responder seals: signed by the site's audit key in the HSM.
    await sealAuditLog(pool, auditCheckpointFile(config.deploymentDir), { settleMs: 0, signer: await ensureAuditKey(pool, runtime.keyStore, 'a', 'console-test') });
    const { context, page } = await signedInPage(tokens.auditor!);
    const { rows } = await pool.query<{ seq: string; actor: string }>('SELECT seq::text, actor FROM audit_events WHERE chain_hash IS NOT NULL ORDER BY seq DESC LIMIT 1');
    const victim = rows[0]!;
    let altered = false;
    try {
      await page.goto(`${base}/console/audit`);
      await page.getByRole('button', { name: 'Verify the chain now' }).click();
      const result = page.getByTestId('audit-result');
      assert.match(await result.innerText(), /The chain is intact/);
      assert.match(await page.locator('main').innerText(), /Recent seals[\s\S]*Signed by audit key/);
      await assertAccessible(page, 'audit');
      await screenshot(page, 'audit');
      // The owner can switch the append-only trigger off: what an attacker with the database would do.
      await pool.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
      altered = true;
      await pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [victim.seq]);
      await page.reload();
      const text = await page.getByTestId('audit-result').innerText();
      assert.match(text, /1 problem\(s\) found/);
      assert.match(text, new RegExp(`modified\\s+${victim.seq}`));
    } finally {
      if (altered) {
        await pool.query(`UPDATE audit_events SET actor = $2 WHERE seq = $1`, [victim.seq, victim.actor]);
        await pool.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
      }
      await context.close();
    }
  });

  it('the drills page lists each drill with its RTO, RPO and a timeline picture', async () => {
    // A drill's own row, as runFailoverDrill records it (the drills themselves run in test/drills.test.ts).
    const t0 = Date.now() - 60_000;
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const timeline = [
      { at: at(0), event: 'last acknowledgement by site a' },
      { at: at(120), event: 'site a killed (SIGKILL, every process)' },
      { at: at(3_900), event: 'site b active (epoch 7)' },
      { at: at(9_910), event: 'first acknowledgement by site b' },
    ];
    await recordDrillRun(pool, { kind: 'failover', from: 'a', to: 'b', rtoSeconds: 9.91, rpoLost: 0, report: { drill: 'failover', rto_s: 9.91, rpo_lost: 0, duplicate_serials: 0, batch_complete: true, timeline } });
    const { context, page } = await signedInPage(tokens.auditor!);
    try {
      await page.goto(`${base}/console/drills`);
      const drill = page.getByTestId('drill').first();
      const text = await drill.innerText();
      assert.match(text, /failover a → b/);
      assert.match(text, /RTO\s+9\.91 s/);
      assert.match(text, /0 certificates lost/);
      assert.match(text, /\+3\.90 s .*site b active \(epoch 7\)/);
      assert.equal(await drill.locator('svg[role=img] circle').count(), 4, 'one mark per event on the time axis');
      await assertAccessible(page, 'drills');
      await screenshot(page, 'drills');
      assert.equal(await page.getByRole('button', { name: /Run a failover drill/ }).count(), 0, 'no drill button: not a test deployment, and not an administrator');
    } finally {
      await context.close();
    }
  });

  it('works with JavaScript off: sign-in, a batch page, a revocation preview', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await page.goto(`${base}/console/sign-in`);
      await page.getByLabel('API token').fill(tokens.admin!);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.goto(`${base}/console/batches/${batchId}`);
      assert.equal(await page.getByTestId('batch-issued').innerText(), String(devices));
      const officer = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
      try {
        const p = await officer.newPage();
        await p.goto(`${base}/console/sign-in`);
        await p.getByLabel('API token').fill(tokens.officerB!);
        await p.getByRole('button', { name: 'Sign in' }).click();
        await p.goto(`${base}/console/revocations`);
        await p.getByLabel('Revoke by').selectOption('batch');
        await p.getByLabel('Devices, serials or batch id').fill(batchId);
        await p.getByRole('button', { name: 'Preview: count certificates' }).click();
        assert.match(await p.getByTestId('revocation-preview').innerText(), new RegExp(`${devices} named`));
      } finally {
        await officer.close();
      }
    } finally {
      await context.close();
    }
  });

  it('a client certificate from the organisation CA signs in without a token, as its person', async () => {
    const name = `console-cert-factory-${randomBytes(3).toString('hex')}`;
    await createToken(pool, 'factory', MAKER, name);
    const adminFile = writeCaFile(ca, `console-admin-${name}.token`, tokens.admin!);
    const out = join(ca.dir, name);
    const issued = await cli(['tls', 'client', '--name', name, '--out', out, '--token-file', adminFile]);
    assert.equal(issued.code, 0, issued.stderr);
    const context = await browser.newContext({ ignoreHTTPSErrors: true, clientCertificates: [{ origin: base, certPath: join(out, 'client.pem'), keyPath: join(out, 'client.key') }] });
    try {
      const page = await context.newPage();
      await page.goto(`${base}/console/sign-in`);
      assert.match(await page.locator('main').innerText(), new RegExp(`client certificate of ${name}`));
      await page.getByRole('button', { name: 'Sign in with this certificate' }).click();
      await page.waitForLoadState();
      assert.match(page.url(), /\/console\/batches$/);
      assert.match(await page.locator('header').innerText(), new RegExp(`${name} · factory of ${MAKER}`));
      const { rows } = await pool.query<{ actor: string }>(`SELECT actor FROM audit_events WHERE action = 'console.sign-in' AND actor LIKE $1`, [`person:${name} via cert:%`]);
      assert.equal(rows.length, 1, 'the sign-in names the certificate it used');
    } finally {
      await context.close();
    }
  });

  it('sign-out ends the session: the old cookie opens nothing', async () => {
    const { context, page } = await signedInPage(tokens.admin!);
    try {
      const cookie = (await context.cookies()).find((c) => c.name === '__Host-fleetpki-console')!;
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.secure, true);
      assert.equal(cookie.sameSite, 'Strict');
      await page.getByRole('button', { name: 'Sign out' }).click();
      assert.match(page.url(), /\/console\/sign-in$/);
      await assertAccessible(page, 'sign-in');
      await screenshot(page, 'sign-in');
      const replay = await raw('/console/batches', { headers: { cookie: `${cookie.name}=${cookie.value}` } });
      assert.equal(replay.status, 303, 'the signed-out cookie is refused');
    } finally {
      await context.close();
    }
  });
});
