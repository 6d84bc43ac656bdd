import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { CaStatusGuard } from '@fleetpki/ca';
import { FleetApiClient } from '@fleetpki/client';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEui64 } from '@fleetpki/manifest';
import { insertCa, listMasterKeys, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { ensureSites, localUrl } from './support/sites.js';

/**
 * Dual control: request -> approve (a second, distinct officer) -> execute once, before expiry.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let apiUrl: string;
let factory: FleetApiClient;
let factoryToken: string;
let alice: FleetApiClient;
let bob: FleetApiClient;
let carol: FleetApiClient;
let custodians: { first: string; second: string };
let admins: { first: string; second: string };
const MAKER = 'dual-control-maker';
const THRESHOLD = 5;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await dropTestCas();
  ca = await ensureCa(config, pool);
  // A small threshold so a handful of certificates is a "bulk" revocation.
  runtime = await createIssuerRuntime({ ...config, site: 'a', dualControl: { revocationThreshold: THRESHOLD, revocationWindowMinutes: 60, approvalTtlMinutes: 60 } }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  apiUrl = localUrl(config, 'api', (runtime.app.server.address() as AddressInfo).port);
  factoryToken = await createToken(pool, 'factory', MAKER, 'dc-factory');
  factory = new FleetApiClient(apiUrl, factoryToken);
  alice = new FleetApiClient(apiUrl, await createToken(pool, 'revocation-officer', null, `dc-alice-${randomUUID()}`));
  bob = new FleetApiClient(apiUrl, await createToken(pool, 'revocation-officer', null, `dc-bob-${randomUUID()}`));
  carol = new FleetApiClient(apiUrl, await createToken(pool, 'revocation-officer', null, `dc-carol-${randomUUID()}`));
  custodians = { first: await createToken(pool, 'custodian', null, `dc-custodian-1-${randomUUID()}`), second: await createToken(pool, 'custodian', null, `dc-custodian-2-${randomUUID()}`) };
  admins = { first: await createToken(pool, 'administrator', null, `dc-admin-1-${randomUUID()}`), second: await createToken(pool, 'administrator', null, `dc-admin-2-${randomUUID()}`) };
});

/** The CA revocation test adds a throw-away CA row; the ceremony and key custody would trip over it. */
const dropTestCas = () => pool.query(`DELETE FROM cas WHERE id LIKE 'dc-ca-%'`);

after(async () => {
  if (pool) await dropTestCas();
  await runtime?.close();
  await pool?.end();
});

async function enrolSome(n: number): Promise<string[]> {
  const serials: string[] = [];
  for (const key of generateDeviceKeys(n)) {
    const eui64 = syntheticEui64(MAKER);
    const res = await fetch(`${apiUrl}/v1/enrolments`, { method: 'POST', headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ eui64, keyRole: 'digitalSignature', csr: key.csr.toString('base64') }) });
    const body = (await res.json()) as { serial: string };
    assert.equal(res.status, 201, JSON.stringify(body));
    serials.push(body.serial);
  }
  return serials;
}

async function revokedCount(serials: string[]): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM revocations WHERE serial = ANY($1::bytea[])', [serials.map((s) => Buffer.from(s, 'hex'))]);
  return Number(rows[0]!.n);
}

async function auditActions(subject: string): Promise<string[]> {
  const { rows } = await pool.query<{ action: string }>('SELECT action FROM audit_events WHERE subject = $1 ORDER BY seq', [subject]);
  return rows.map((r) => r.action);
}

const approvalOf = async (promise: Promise<unknown>): Promise<{ id: string; status: string }> => {
  try {
    await promise;
  } catch (err) {
    const approval = (err as { details?: { approval?: { id: string; status: string } } }).details?.approval;
    if (approval) return approval;
    throw err;
  }
  throw new Error('expected APPROVAL_REQUIRED');
};

describe('dual control of bulk revocations', () => {
  it('above the threshold nothing is revoked until a second officer approves; self-approval is refused; execution happens once', async () => {
    const serials = await enrolSome(THRESHOLD + 1);
    const approval = await approvalOf(alice.revoke({ serials }, 'keyCompromise'));
    assert.equal(approval.status, 'pending');
    assert.equal(await revokedCount(serials), 0, 'a pending request revokes nothing');

    await assert.rejects(alice.approve(approval.id), { code: 'APPROVAL_SELF' });
    await assert.rejects(alice.executeApproval(approval.id), { code: 'APPROVAL_NOT_APPROVED' });
    await assert.rejects(factory.approve(approval.id), { code: 'ROLE_FORBIDDEN' });
    assert.equal(await revokedCount(serials), 0);

    assert.equal((await bob.approve(approval.id)).status, 'approved');
    await assert.rejects(bob.approve(approval.id), { code: 'APPROVAL_NOT_PENDING' });
    await assert.rejects(carol.executeApproval(approval.id), { code: 'APPROVAL_EXECUTOR_INVALID' });
    assert.equal(await revokedCount(serials), 0, 'approved but not executed: still nothing');

    const done = await alice.executeApproval(approval.id);
    assert.equal(done.status, 'executed');
    assert.equal((done.outcome as { revoked: number }).revoked, THRESHOLD + 1);
    assert.equal(await revokedCount(serials), THRESHOLD + 1);
    await assert.rejects(alice.executeApproval(approval.id), { code: 'APPROVAL_NOT_PENDING' });

    // Every refusal is on the record too: Alice approving her own and executing early, Bob approving
    // twice, Carol executing someone else's, Alice executing twice.
    assert.deepEqual(await auditActions(approval.id), ['approval.request', 'approval.refused', 'approval.refused', 'approval.approve', 'approval.refused', 'approval.refused', 'approval.execute', 'approval.refused']);
    const listed = (await carol.approvals()).find((a) => a.id === approval.id);
    assert.equal(listed?.status, 'executed');
  });

  it('an expired request can be neither approved nor executed, and revokes nothing', async () => {
    const serials = await enrolSome(THRESHOLD + 1);
    const pending = await approvalOf(alice.revoke({ serials }));
    const approved = await approvalOf(alice.revoke({ serials }));
    await bob.approve(approved.id);
    // Time passes: both requests run out (the database's clock decides, as in production).
    await pool.query(`UPDATE approval_requests SET expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, [[pending.id, approved.id]]);
    await assert.rejects(bob.approve(pending.id), { code: 'APPROVAL_EXPIRED' });
    await assert.rejects(alice.executeApproval(approved.id), { code: 'APPROVAL_EXPIRED' });
    assert.equal((await alice.approval(approved.id)).status, 'expired');
    assert.equal(await revokedCount(serials), 0);
  });

  it('at or below the threshold a revocation runs at once', async () => {
    const serials = await enrolSome(THRESHOLD);
    assert.equal((await alice.revoke({ serials })).revoked, THRESHOLD);
  });

  it('unknown or malformed approval ids are 404s', async () => {
    await assert.rejects(bob.approve(randomUUID()), { code: 'APPROVAL_NOT_FOUND' });
    await assert.rejects(bob.approve('not-a-uuid'), { code: 'APPROVAL_NOT_FOUND' });
  });
});

describe('dual control of CA revocation', () => {
  it('revokes a CA only after approval; its issuance stops', async () => {
    const caId = `dc-ca-${randomBytes(3).toString('hex')}`;
    await insertCa(pool, { id: caId, kind: 'device-issuing', parentId: 'root', subjectDn: `CN=${caId}`, keyUri: 'pkcs11:object=none', keyId: randomBytes(8), certificate: Buffer.from([0x30, 0x00]), notAfter: new Date('2040-01-01') });
    const guard = new CaStatusGuard(pool);
    await guard.assertActive(caId);
    const request = await alice.requestApproval({ action: 'ca.revoke', caId, reason: 'keyCompromise' });
    assert.equal(request.status, 'pending');
    await assert.rejects(alice.executeApproval(request.id), { code: 'APPROVAL_NOT_APPROVED' });
    await bob.approve(request.id);
    assert.equal((await bob.executeApproval(request.id)).status, 'executed');
    const { rows } = await pool.query<{ status: string }>('SELECT status FROM cas WHERE id = $1', [caId]);
    assert.equal(rows[0]!.status, 'revoked');
    await assert.rejects(new CaStatusGuard(pool).assertActive(caId), { code: 'CA_NOT_ACTIVE' });
  });
});

describe('dual control at the command line', () => {
  it('rotating an active master key needs an approval from a second custodian', async () => {
    const first = writeCaFile(ca, 'custodian-1.token', custodians.first);
    const second = writeCaFile(ca, 'custodian-2.token', custodians.second);
    const env = { FLEETPKI_API_PORT_A: String((runtime.app.server.address() as AddressInfo).port) };
    for (const role of ['mac', 'enc']) if (!(await listMasterKeys(pool)).some((m) => m.role === role && m.status === 'active')) assert.equal((await cli(['keys', 'master', 'create', '--role', role, '--token-file', first])).code, 0);
    const versions = async () => (await listMasterKeys(pool)).filter((m) => m.role === 'mac').length;
    const before = await versions();
    const refused = await cli(['keys', 'master', 'create', '--role', 'mac', '--token-file', first]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /DUAL_CONTROL_REQUIRED/);
    const requested = await cli(['approvals', 'request', 'master-key.rotate', '--role', 'mac', '--token-file', first], env);
    assert.equal(requested.code, 0, requested.stderr);
    const id = /^([0-9a-f-]{36})/.exec(requested.stdout)![1]!;
    const early = await cli(['keys', 'master', 'create', '--role', 'mac', '--approval', id, '--token-file', first]);
    assert.match(early.stderr, /APPROVAL_NOT_APPROVED/);
    const self = await cli(['approvals', 'approve', id, '--token-file', first], env);
    assert.match(self.stderr, /APPROVAL_SELF/);
    assert.equal(await versions(), before, 'nothing rotated yet');
    assert.equal((await cli(['approvals', 'approve', id, '--token-file', second], env)).code, 0);
    const wrongRole = await cli(['keys', 'master', 'create', '--role', 'enc', '--approval', id, '--token-file', first]);
    assert.notEqual(wrongRole.code, 0);
    const rotated = await cli(['keys', 'master', 'create', '--role', 'mac', '--approval', id, '--token-file', first]);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(await versions(), before + 1);
    assert.match((await cli(['keys', 'master', 'create', '--role', 'mac', '--approval', id, '--token-file', first])).stderr, /APPROVAL_NOT_PENDING/);
  });

  it('a planned switchover needs an approved request; an unapproved one switches nothing', async () => {
    const admin = writeCaFile(ca, 'admin-1.token', admins.first);
    const env = { FLEETPKI_API_PORT_A: String((runtime.app.server.address() as AddressInfo).port) };
    assert.match((await cli(['drill', 'switchover'])).stderr, /DUAL_CONTROL_REQUIRED/);
    const requested = await cli(['approvals', 'request', 'site.switchover', '--token-file', admin], env);
    assert.equal(requested.code, 0, requested.stderr);
    const id = /^([0-9a-f-]{36})/.exec(requested.stdout)![1]!;
    const refused = await cli(['drill', 'switchover', '--approval', id, '--token-file', admin]);
    assert.match(refused.stderr, /APPROVAL_NOT_APPROVED/);
    const { rows } = await pool.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
    assert.equal(rows[0]!.in_recovery, false, 'site A is still the primary');
  });
});
