import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { agentPid, consensusStatus, pgDataDir, postgresChildren, protect, sitesUp, startService, stopProcess, waitForHttp, waitForSyncStandby } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { cli } from './support/cli.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * The standby host freezes while site A serves (issue: a write hung for ever, /readyz said "ready", and the
 * retry after recovery got 409). Now: writes answer 503 STANDBY_UNAVAILABLE with Retry-After within the
 * configured wait, /readyz and `sites status` say why, running unprotected is two administrators'
 * decision (and undone by one), and an enrolment whose answer was lost is retried after the standby
 * returns and gets the certificate it was issued: 200, the same serial, nothing signed twice.
 */
const OFFSET = 800;
const WAIT_MS = 2_000;
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let factoryToken: string;
const children: ChildProcess[] = [];
const apiUrl = () => `http://127.0.0.1:${config.sites.a.apiPort + OFFSET}`;

interface Answer {
  readonly status: number;
  readonly body: { serial?: string; reused?: boolean; code?: string; message?: string };
  readonly retryAfter: string | null;
  readonly ms: number;
}

async function enrol(eui64: string, csr: Buffer, timeoutMs = WAIT_MS + 2_000): Promise<Answer> {
  const started = Date.now();
  const res = await fetch(`${apiUrl()}/v1/enrolments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ eui64, keyRole: 'digitalSignature', csr: csr.toString('base64') }),
    // No request may hang past the wait: the client gives up at wait + 2 s, which fails the test.
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'], retryAfter: res.headers.get('retry-after'), ms: Date.now() - started };
}

async function certificatesOf(eui64: string): Promise<string[]> {
  const { rows } = await pool.query<{ serial: Buffer }>('SELECT serial FROM certificates WHERE eui64 = $1 ORDER BY issued_at', [Buffer.from(eui64, 'hex')]);
  return rows.map((r) => r.serial.toString('hex').toUpperCase());
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  factoryToken = await createToken(pool, 'factory', 'standby-maker', `standby-factory-${randomBytes(3).toString('hex')}`);
});

/**
 * Freezes site B's host: its agent and postmaster, then the postmaster's children (listed once it is
 * stopped, so none is forked after the list). Its own children: matching backends by cluster_name
 * would also stop another checkout's site B. Returns every process stopped.
 */
function freezeSiteB(): number[] {
  const site = config.sites.b;
  const postmaster = Number(readFileSync(join(pgDataDir(site), 'postmaster.pid'), 'utf8').split('\n')[0]);
  const first = [agentPid(site), postmaster].filter((p): p is number => p !== undefined && p > 0);
  for (const pid of first) signalIfAlive(pid, 'SIGSTOP');
  const children = postgresChildren(postmaster);
  for (const pid of children) signalIfAlive(pid, 'SIGSTOP');
  return [...first, ...children];
}

let thaw: (() => void) | undefined;

/** Signals a process that may have ended since it was listed (a PostgreSQL backend whose session
 *  closed): one that is gone needs neither stopping nor continuing. Anything else is an error. */
function signalIfAlive(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

after(async () => {
  thaw?.();
  await Promise.all(children.map(stopProcess));
  // Whatever happened above, B is A's synchronous standby again and the pair is protected.
  if ((await consensusStatus(config)).unprotected) await protect(config);
  await sitesUp(config);
  await waitForSyncStandby(config, config.sites.a, config.sites.b);
  await pool?.end();
});

describe('the standby site goes down', () => {
  it('writes answer 503 STANDBY_UNAVAILABLE within the wait; unprotect is two people; a lost enrolment retried after recovery gets 200 with the same serial', async () => {
    const admin = async (name: string) => writeCaFile(ca, `${name}.token`, await createToken(pool, 'administrator', null, `${name}-${randomBytes(3).toString('hex')}`));
    const [firstAdmin, secondAdmin] = [await admin('standby-admin-1'), await admin('standby-admin-2')];
    const issuer = startService(config, 'issuer-api', { FLEETPKI_SITE: 'a', FLEETPKI_API_PORT_A: String(config.sites.a.apiPort + OFFSET), FLEETPKI_WRITE_WAIT_MS: String(WAIT_MS), FLEETPKI_CRL_BASE_URL: config.crlBaseUrl });
    children.push(issuer);
    await waitForHttp(`${apiUrl()}/readyz`, 60_000);
    const [k0, lostKey, refusedKey, unprotectedKey, blockedAgainKey] = generateDeviceKeys(5) as [ReturnType<typeof generateDeviceKeys>[number], ...ReturnType<typeof generateDeviceKeys>];
    const eui = () => syntheticEui64('standby-maker');
    assert.equal((await enrol(eui(), k0!.csr)).status, 201, 'writes flow while B streams');

    // The standby host freezes (a hung host, or a cut link: its walsender on A still says "streaming"):
    // its agent and every PostgreSQL process stop.
    const frozen = freezeSiteB();
    assert.ok(frozen.length >= 3, 'site B runs an agent, a postmaster and its processes');
    thaw = () => frozen.forEach((pid) => signalIfAlive(pid, 'SIGCONT'));

    // A client that gives up before the service answers: the enrolment waits for B in its commit.
    const lostEui = eui();
    await assert.rejects(enrol(lostEui, lostKey!.csr, 1_000), /aborted|timeout/i);

    const refusedEui = eui();
    const refused = await enrol(refusedEui, refusedKey!.csr);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'STANDBY_UNAVAILABLE');
    assert.match(refused.body.message ?? '', /writes blocked: the synchronous standby \(site b\) has been unreachable since/);
    assert.ok(Number(refused.retryAfter) >= 1, `Retry-After: ${refused.retryAfter}`);
    console.log(`# standby down: 503 STANDBY_UNAVAILABLE after ${refused.ms} ms (wait ${WAIT_MS} ms)`);

    const ready = await fetch(`${apiUrl()}/readyz`);
    const readyBody = (await ready.json()) as { code?: string; message?: string };
    assert.equal(ready.status, 503);
    assert.equal(readyBody.code, 'STANDBY_UNAVAILABLE');
    assert.match(readyBody.message ?? '', /writes blocked: synchronous standby unreachable since /);
    const status = await waitFor('sites status to say writes are blocked', async () => {
      const s = await cli(['sites', 'status']);
      return /writes blocked: synchronous standby unreachable since/.test(s.stdout) ? s.stdout : undefined;
    }, 20_000, 500);
    assert.match(status, /strictly synchronous/);

    // Running unprotected is two people's decision.
    const alone = await cli(['sites', 'unprotect', '--reason', 'standby host lost', '--token-file', firstAdmin]);
    assert.match(alone.stderr, /DUAL_CONTROL_REQUIRED/);
    const samePerson = await cli(['sites', 'unprotect', '--reason', 'standby host lost', '--token-file', firstAdmin, '--second-token-file', firstAdmin]);
    assert.match(samePerson.stderr, /APPROVAL_SAME_PEOPLE/);
    const unprotected = await cli(['sites', 'unprotect', '--reason', 'standby host lost', '--token-file', firstAdmin, '--second-token-file', secondAdmin]);
    assert.equal(unprotected.code, 0, unprotected.stderr);
    assert.match(unprotected.stdout, /site a runs UNPROTECTED since/);
    const unprotectedEui = eui();
    const whileUnprotected = await enrol(unprotectedEui, unprotectedKey!.csr);
    assert.equal(whileUnprotected.status, 201, `unprotected, writes commit without B: ${JSON.stringify(whileUnprotected.body)}`);
    assert.match((await cli(['sites', 'status'])).stdout, /UNPROTECTED since .* \(by .*standby-admin-1.* \+ .*standby-admin-2.*\)/);

    // One administrator asks for protection while B is still frozen: writes wait for B again at once
    // (protection "restoring"), but protection is not restored, nor B vouching or eligible, while B has
    // not replayed what A acknowledged unprotected (issue 33 §4): the order is refused, naming why.
    const early = await cli(['sites', 'protect', '--token-file', firstAdmin]);
    assert.notEqual(early.code, 0, early.stdout);
    assert.match(early.stderr, /SITE_STANDBY_BEHIND/);
    assert.match((await cli(['sites', 'status'])).stdout, /UNPROTECTED since|restoring/i);
    const blockedAgainEui = eui();
    const blockedAgain = await enrol(blockedAgainEui, blockedAgainKey!.csr);
    assert.deepEqual([blockedAgain.status, blockedAgain.body.code], [503, 'STANDBY_UNAVAILABLE']);

    // The standby returns: writes flow, and a retry with the same key gets the certificate its first
    // attempt was issued if that attempt committed (the lost one did: it was waiting in its commit).
    thaw();
    thaw = undefined;
    await waitForSyncStandby(config, config.sites.a, config.sites.b);
    // Back and caught up: the same administrator's request now restores protection.
    const restored = await cli(['sites', 'protect', '--token-file', firstAdmin]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal((await consensusStatus(config)).unprotected, undefined, 'protected again');
    await waitFor('/readyz to be ready again', async () => ((await fetch(`${apiUrl()}/readyz`)).status === 200 ? true : undefined), 20_000, 200);
    assert.equal((await certificatesOf(lostEui)).length, 1, 'the lost enrolment committed');
    for (const [eui64, key] of [[lostEui, lostKey!], [refusedEui, refusedKey!], [blockedAgainEui, blockedAgainKey!]] as const) {
      const stored = await certificatesOf(eui64);
      const retry = await enrol(eui64, key.csr);
      if (stored.length === 1) assert.deepEqual([retry.status, retry.body.serial, retry.body.reused], [200, stored[0], true], `${eui64}: ${JSON.stringify(retry.body)}`);
      else assert.deepEqual([stored.length, retry.status], [0, 201], `${eui64}: refused before anything was written, so enrolled now: ${JSON.stringify(retry.body)}`);
      assert.equal((await certificatesOf(eui64)).length, 1, `${eui64}: one certificate, nothing signed twice`);
    }
    const { rows } = await pool.query<{ action: string; actor: string }>(`SELECT action, actor FROM audit_events WHERE action IN ('site.unprotect', 'site.protect') ORDER BY seq DESC LIMIT 2`);
    assert.deepEqual(rows.map((r) => r.action), ['site.protect', 'site.unprotect']);
    assert.match(rows[1]!.actor, /standby-admin-1.* \+ .*standby-admin-2/);
  });
});
