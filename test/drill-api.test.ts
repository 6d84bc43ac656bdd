import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import type { Pool } from '@fleetpki/store';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * POST /v1/drills (test deployments) kills the active site: it takes two administrators (an approved
 * drill.failover request), and one drill runs at a time, by a lock in etcd that the drill process holds
 * for its life, not by a file the API checks. So that this file kills nothing, the API's deployment
 * names a repository folder of its own whose `fleetpki` (services/cli/src/main.ts) is a stand-in: it
 * takes the real drill lock (drills one-drill-at-a-time.ts, as `drill failover` does) and, instead of
 * killing a site, holds it until the test lets it go. test/drills.test.ts starts a real one this way.
 */
let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let apiUrl: string;
let standInRepo: string;
let stateDir: string;
const admins: string[] = [];

const STAND_IN = (repo: string) => `import { existsSync } from 'node:fs';
import { loadConfig } from '${repo}/packages/core/src/index.ts';
import { withDrillLock } from '${repo}/packages/drills/src/one-drill-at-a-time.ts';
const args = process.argv.slice(2);
const startedBy = args[args.indexOf('--started-by') + 1] ?? 'unknown';
const release = new URL('../../../release', import.meta.url);
await withDrillLock(loadConfig(), 'failover', startedBy, async () => {
  console.log('stand-in drill: holding the drill lock instead of killing a site');
  for (let i = 0; i < 1200 && !existsSync(release); i++) await new Promise((r) => setTimeout(r, 50));
});
console.log('stand-in drill: done');
`;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  standInRepo = mkdtempSync(join(tmpdir(), 'fleetpki-drill-api-repo-'));
  stateDir = mkdtempSync(join(tmpdir(), 'fleetpki-drill-api-state-'));
  mkdirSync(join(standInRepo, 'services', 'cli', 'src'), { recursive: true });
  writeFileSync(join(standInRepo, 'services', 'cli', 'src', 'main.ts'), STAND_IN(config.repoRoot));
  // `node --import tsx` finds tsx from the working directory, which is the repository folder; ESM like ours.
  symlinkSync(join(config.repoRoot, 'node_modules'), join(standInRepo, 'node_modules'));
  writeFileSync(join(standInRepo, 'package.json'), '{ "type": "module" }\n');
  for (let i = 0; i < 3; i++) admins.push(await createToken(pool, 'administrator', null, `drill-api-admin-${i}-${randomUUID().slice(0, 8)}`));
  // programsDir is where the API starts the CLI from (paths.programs): the stand-in's folder, or a real drill would kill site A.
  runtime = await createIssuerRuntime({ ...config, site: 'a', repoRoot: standInRepo, programsDir: standInRepo, stateDir, console: { ...config.console, drills: true } }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  apiUrl = `http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
});

after(async () => {
  // Whatever happened, no stand-in keeps the drill lock past this file.
  if (standInRepo) writeFileSync(join(standInRepo, 'release'), '');
  await runtime?.close();
  await pool?.end();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

async function api(token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${apiUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** drill.failover requested by one administrator and, unless `approvedBy` is undefined, approved by another. */
async function approval(requestedBy: string, approvedBy: string | undefined): Promise<string> {
  const requested = await api(requestedBy, 'POST', '/v1/approvals', { action: 'drill.failover' });
  assert.equal(requested.status, 201, JSON.stringify(requested.body));
  const id = requested.body.id as string;
  if (approvedBy) {
    const approved = await api(approvedBy, 'POST', `/v1/approvals/${id}/approve`);
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
  }
  return id;
}

const drillLogs = () => (existsSync(join(stateDir, 'drill')) ? readdirSync(join(stateDir, 'drill')) : []);

describe('POST /v1/drills: two people, one drill at a time', () => {
  it('one administrator alone starts nothing: DUAL_CONTROL_REQUIRED without an approval, and her own request unapproved or self-approved', async () => {
    const alone = await api(admins[0]!, 'POST', '/v1/drills', { kind: 'failover', devices: 100 });
    assert.equal(alone.status, 403, JSON.stringify(alone.body));
    assert.equal(alone.body.code, 'DUAL_CONTROL_REQUIRED');
    const own = await approval(admins[0]!, undefined);
    const unapproved = await api(admins[0]!, 'POST', '/v1/drills', { kind: 'failover', devices: 100, approval: own });
    assert.equal(unapproved.status, 409, JSON.stringify(unapproved.body));
    assert.equal(unapproved.body.code, 'APPROVAL_NOT_APPROVED');
    const self = await api(admins[0]!, 'POST', `/v1/approvals/${own}/approve`);
    assert.equal(self.status, 403, JSON.stringify(self.body));
    assert.deepEqual(drillLogs(), [], 'no drill process was started');
  });

  it('two concurrent POSTs with valid approvals: exactly one drill starts, the other gets 409 DRILL_RUNNING and keeps its approval', async () => {
    const first = await approval(admins[0]!, admins[1]!);
    const second = await approval(admins[1]!, admins[2]!);
    const answers = await Promise.all([
      api(admins[0]!, 'POST', '/v1/drills', { kind: 'failover', devices: 100, approval: first }),
      api(admins[1]!, 'POST', '/v1/drills', { kind: 'failover', devices: 100, approval: second }),
    ]);
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [202, 409], JSON.stringify(answers.map((a) => a.body)));
    const started = answers.find((a) => a.status === 202)!;
    const refused = answers.find((a) => a.status === 409)!;
    assert.equal(refused.body.code, 'DRILL_RUNNING', JSON.stringify(refused.body));
    assert.match(String(refused.body.message), /failover drill runs already \(process \d+, started by person:/);
    const startedApproval = started.body.approval as string;
    const refusedApproval = startedApproval === first ? second : first;
    assert.equal((await api(admins[2]!, 'GET', `/v1/approvals/${startedApproval}`)).body.status, 'executed');
    assert.equal((await api(admins[2]!, 'GET', `/v1/approvals/${refusedApproval}`)).body.status, 'approved', 'the refused start gave its claim back');
    const audit = await pool.query<{ details: { approval: string } }>(`SELECT details FROM audit_events WHERE action = 'drill.start' AND details->>'approval' = ANY($1)`, [[first, second]]);
    assert.deepEqual(audit.rows.map((r) => r.details.approval), [startedApproval], 'one drill.start audit row, for the drill that started');

    // The drill ends; its lock goes with it, and the refused approval can start the next one.
    writeFileSync(join(standInRepo, 'release'), '');
    const pid = started.body.pid as number;
    await waitFor('the drill process to end', async () => (isAlive(pid) ? undefined : true), 30_000, 100);
    rmSync(join(standInRepo, 'release'));
    const retried = await api(refusedApproval === first ? admins[0]! : admins[1]!, 'POST', '/v1/drills', { kind: 'failover', devices: 100, approval: refusedApproval });
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    writeFileSync(join(standInRepo, 'release'), '');
    await waitFor('the second drill process to end', async () => (isAlive(retried.body.pid as number) ? undefined : true), 30_000, 100);
  });

  it('the same approval twice at once starts one drill; the other is 409 APPROVAL_NOT_PENDING', async () => {
    rmSync(join(standInRepo, 'release'), { force: true });
    const id = await approval(admins[0]!, admins[1]!);
    const answers = await Promise.all([admins[0]!, admins[1]!].map((t) => api(t, 'POST', '/v1/drills', { kind: 'failover', devices: 100, approval: id })));
    assert.deepEqual(answers.map((a) => a.status).sort(), [202, 409], JSON.stringify(answers.map((a) => a.body)));
    assert.equal(answers.find((a) => a.status === 409)!.body.code, 'APPROVAL_NOT_PENDING');
    writeFileSync(join(standInRepo, 'release'), '');
    await waitFor('the drill process to end', async () => (isAlive(answers.find((a) => a.status === 202)!.body.pid as number) ? undefined : true), 30_000, 100);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
