import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FleetApiClient } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { createPool, listCas, listMasterKeys, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * Two-person control that one person cannot satisfy alone. An administrator who holds several
 * credentials — their own, and tokens they minted for others — is still one person: every approval or
 * execution where they stand behind both steps is refused, by the database, audited, and changes
 * nothing. Splitting a large revocation into small ones does not escape the threshold either.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let apiUrl: string;
const suffix = randomBytes(3).toString('hex');
const MAKER = `tp-maker-${suffix}`;
const THRESHOLD = 100;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  runtime = await createIssuerRuntime({ ...config, site: 'a', dualControl: { revocationThreshold: THRESHOLD, revocationWindowMinutes: 60, approvalTtlMinutes: 60 } }, { logger: false, hsmSessions: 2, poolSize: 6 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  apiUrl = localUrl(config, 'api', (runtime.app.server.address() as AddressInfo).port);
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

/** A client that remembers its token (to post raw requests and write token files). */
const api = (token: string) => Object.assign(new FleetApiClient(apiUrl, token), { secret: token });
type Api = ReturnType<typeof api>;

/** Administrator `minter` gets a token for the existing person `name`, approved by administrator `approver`. */
async function mintFor(minter: Api, approver: Api, name: string, role: string): Promise<string> {
  const request = await minter.requestApproval({ action: 'credential.create', name });
  await approver.approve(request.id);
  const res = await fetch(`${apiUrl}/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${minter.secret}`, 'content-type': 'application/json' }, body: JSON.stringify({ name, role, approval: request.id }) });
  const body = (await res.json()) as { token: string };
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.token;
}

async function refusals(subject: string): Promise<string[]> {
  const { rows } = await pool.query<{ code: string }>(`SELECT details->>'code' AS code FROM audit_events WHERE action = 'approval.refused' AND subject = $1 ORDER BY seq`, [subject]);
  return rows.map((r) => r.code);
}

describe('two people, not two tokens', () => {
  it("an administrator cannot mint a privileged person's token alone; nothing is created", async () => {
    const mallory = api(await createToken(pool, 'administrator', null, `mallory-${suffix}`));
    const before = Number((await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM people')).rows[0]!.n);
    for (const role of ['revocation-officer', 'administrator', 'custodian', 'auditor']) {
      const res = await fetch(`${apiUrl}/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${mallory.secret}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: `fake-${role}-${suffix}`, role }) });
      assert.equal(res.status, 403, role);
      assert.equal(((await res.json()) as { code: string }).code, 'APPROVAL_REQUIRED');
    }
    assert.equal(Number((await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM people')).rows[0]!.n), before, 'no person was created');
    // The CLI refuses too: without an administrator's token, and for a privileged role without an approval.
    assert.match((await cli(['tokens', 'create', '--role', 'revocation-officer', '--name', `cli-${suffix}`], { FLEETPKI_TOKEN: '' })).stderr, /TOKEN_MISSING/);
    const file = writeCaFile(ca, `mallory-${suffix}.token`, mallory.secret);
    assert.match((await cli(['tokens', 'create', '--role', 'revocation-officer', '--name', `cli-${suffix}`, '--token-file', file])).stderr, /APPROVAL_REQUIRED/);
    // The database itself refuses the CLI's role a direct write.
    const operatorRole = createPool(config.sites.a.serviceDatabaseUrls.operator, { max: 1 });
    try {
      await assert.rejects(operatorRole.query(`INSERT INTO people (id, name, role) VALUES ($1, $2, 'administrator')`, [randomUUID(), `direct-${suffix}`]), /permission denied/);
    } finally {
      await operatorRole.end();
    }
  });

  it('an administrator holding tokens minted for two officers, two custodians and another administrator is refused every step after the request: CA revocation, switchover, master-key rotation', async () => {
    const mallory = api(await createToken(pool, 'administrator', null, `mallory2-${suffix}`));
    const helper = api(await createToken(pool, 'administrator', null, `helper-${suffix}`));
    // People who exist (made at installation); Mallory obtains a credential for each, legitimately approved by a helper.
    for (const [name, role] of [[`officer-b-${suffix}`, 'revocation-officer'], [`officer-c-${suffix}`, 'revocation-officer'], [`custodian-x-${suffix}`, 'custodian'], [`custodian-y-${suffix}`, 'custodian'], [`admin-e-${suffix}`, 'administrator']] as const) {
      await createToken(pool, role, null, name);
    }
    const asB = api(await mintFor(mallory, helper, `officer-b-${suffix}`, 'revocation-officer'));
    const asC = api(await mintFor(mallory, helper, `officer-c-${suffix}`, 'revocation-officer'));
    const asX = api(await mintFor(mallory, helper, `custodian-x-${suffix}`, 'custodian'));
    const asY = api(await mintFor(mallory, helper, `custodian-y-${suffix}`, 'custodian'));
    const asE = api(await mintFor(mallory, helper, `admin-e-${suffix}`, 'administrator'));

    const caBefore = (await listCas(pool)).map((c) => `${c.id}:${c.status}`);
    const mastersBefore = (await listMasterKeys(pool)).length;

    // CA revocation: requested as B, approved as C or as Mallory herself: the same person behind both.
    const caRevoke = await asB.requestApproval({ action: 'ca.revoke', caId: 'fpd1', reason: 'keyCompromise' });
    await assert.rejects(asC.approve(caRevoke.id), { code: 'APPROVAL_SAME_PEOPLE' });
    await assert.rejects(mallory.approve(caRevoke.id), { code: 'APPROVAL_SAME_PEOPLE' });
    await assert.rejects(asB.executeApproval(caRevoke.id), { code: 'APPROVAL_NOT_APPROVED' });
    assert.deepEqual(await refusals(caRevoke.id), ['APPROVAL_SAME_PEOPLE', 'APPROVAL_SAME_PEOPLE', 'APPROVAL_NOT_APPROVED']);

    // Switchover: requested by Mallory, approved as E (a token she minted).
    const switchover = await mallory.requestApproval({ action: 'site.switchover' });
    await assert.rejects(asE.approve(switchover.id), { code: 'APPROVAL_SAME_PEOPLE' });
    assert.deepEqual(await refusals(switchover.id), ['APPROVAL_SAME_PEOPLE']);
    const malloryFile = writeCaFile(ca, `mallory2-${suffix}.token`, mallory.secret);
    assert.match((await cli(['drill', 'switchover', '--approval', switchover.id, '--token-file', malloryFile])).stderr, /APPROVAL_NOT_APPROVED/);

    // Master-key rotation: requested as custodian X, approved as custodian Y.
    const rotation = await asX.requestApproval({ action: 'master-key.rotate', role: 'mac' });
    await assert.rejects(asY.approve(rotation.id), { code: 'APPROVAL_SAME_PEOPLE' });
    assert.deepEqual(await refusals(rotation.id), ['APPROVAL_SAME_PEOPLE']);

    // Nothing changed.
    assert.deepEqual((await listCas(pool)).map((c) => `${c.id}:${c.status}`), caBefore);
    assert.equal((await listMasterKeys(pool)).length, mastersBefore);
    const { rows } = await pool.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
    assert.equal(rows[0]!.in_recovery, false, 'site A is still the primary');
    // And the approvals show who used which credential.
    const shown = await asB.approval(caRevoke.id);
    assert.equal(shown.requestedBy, `officer-b-${suffix}`);
    assert.match(shown.requestedWith, /^token:[0-9a-f-]{36}$/);
  });

  it('a second, distinct person approves and executes: the same request then goes through', async () => {
    const officer1 = api(await createToken(pool, 'revocation-officer', null, `honest-1-${suffix}`));
    const officer2 = api(await createToken(pool, 'revocation-officer', null, `honest-2-${suffix}`));
    const request = await officer1.requestApproval({ action: 'ca.revoke', caId: `none-${suffix}` });
    const approved = await officer2.approve(request.id);
    assert.deepEqual([approved.status, approved.approvedBy], ['approved', `honest-2-${suffix}`]);
    assert.match(approved.approvedWith!, /^token:/);
  });

  it('splitting a revocation does not escape the threshold: 20 requests of 10 devices x 2 roles, the ones past 100 certificates need approval', async () => {
    const factoryToken = await createToken(pool, 'factory', MAKER, `tp-factory-${suffix}`);
    const officer = api(await createToken(pool, 'revocation-officer', null, `splitter-${suffix}`));
    const devices: string[] = [];
    for (let i = 0; i < 200; i++) {
      const eui64 = syntheticEui64(MAKER);
      for (const [keyRole, key] of [['digitalSignature', generateDeviceKeys(1)[0]!], ['keyAgreement', generateDeviceKeys(1)[0]!]] as const) {
        const res = await runtime.app.inject({ method: 'POST', url: '/v1/enrolments', headers: { authorization: `Bearer ${factoryToken}` }, payload: { eui64, keyRole, csr: key.csr.toString('base64') } });
        assert.equal(res.statusCode, 201, res.body);
      }
      devices.push(eui64);
    }
    const outcomes: (number | 'approval')[] = [];
    for (let r = 0; r < 20; r++) {
      try {
        outcomes.push((await officer.revoke({ devices: devices.slice(r * 10, r * 10 + 10) }, 'keyCompromise')).revoked);
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'APPROVAL_REQUIRED', String(err));
        const details = (err as { details?: { wouldRevoke: number; recentWithoutApproval: number } }).details!;
        assert.equal(details.wouldRevoke, 20);
        outcomes.push('approval');
      }
    }
    // 5 requests x 20 certificates = 100 (not more than the threshold); every later one would pass it.
    assert.deepEqual(outcomes, [20, 20, 20, 20, 20, ...Array.from({ length: 15 }, () => 'approval' as const)]);
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM revocations r JOIN certificates c ON c.serial = r.serial WHERE c.eui64 = ANY($1::bytea[])`, [devices.map((d) => Buffer.from(d, 'hex'))]);
    assert.equal(rows[0]!.n, 100, 'only the first five requests revoked anything');
  });
});
