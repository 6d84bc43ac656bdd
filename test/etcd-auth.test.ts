import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CaSiteReader, ensureEtcdAuth, etcdCredentialsDir, openConsensus, putSiteOrder, readSiteOrderEntry, type ConsensusClient, type SiteOrderAnswer, type SiteOrderRequest } from '@fleetpki/consensus';
import type { FleetConfig } from '@fleetpki/core';
import { placeSiteOrder } from '@fleetpki/sites';
import { createPool, readSiteOrder, recordSiteOrder, type Pool } from '@fleetpki/store';
import { createToken } from './support/ca.js';
import { assertNeededAccess, assertOnlyAgentsWrite } from './support/etcd-permissions.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * Issue 33 §2, last bullet: the two-administrator checks of `sites unprotect` and `sites failover
 * --force` lived in the CLI's process, and anyone who could write to etcd set the keys directly. etcd has
 * authentication now (consensus/etcd-auth.ts): these run against the local sites' etcd, with etcdctl
 * (what anyone who can reach etcd has) and with our own clients, and try what the checks are about.
 * The agents act only on orders recorded in the database (sites/site-orders.ts); a forged one is refused.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let operatorPool: Pool;
let service: ConsensusClient;
let operator: ConsensusClient;

const proofOf = (token: string) => `token:${createHash('sha256').update(token).digest('hex')}`;

async function adminProof(name: string): Promise<string> {
  return proofOf(await createToken(pool, 'administrator', null, `${name}-${randomBytes(3).toString('hex')}`));
}

async function answerOf(id: string): Promise<SiteOrderAnswer> {
  return waitFor(`the agents' answer to order ${id}`, async () => (await readSiteOrderEntry(service, config, id))?.answer, 30_000, 100);
}

function order(action: SiteOrderRequest['action'], extra: Partial<SiteOrderRequest> = {}): SiteOrderRequest {
  return { action, database: config.pgDatabase, at: new Date().toISOString(), ...extra };
}

async function syncStandbyNames(url: string): Promise<string> {
  const p = createPool(url, { max: 1 });
  try {
    return (await p.query<{ s: string }>(`SELECT current_setting('synchronous_standby_names') AS s`)).rows[0]!.s;
  } finally {
    await p.end();
  }
}

before(async () => {
  config = await ensureSites();
  service = openConsensus(config, 'service');
  operator = openConsensus(config, 'operator');
  // Orders are recorded on the primary: the leader's site (A, unless a test before failed over).
  const leader = await waitFor('a leader', async () => (await new CaSiteReader(service, config).read()).leader, 60_000, 100);
  pool = createPool(config.sites[leader.site].databaseUrl, { max: 4, applicationName: 'fleetpki-test' });
  operatorPool = createPool(config.sites[leader.site].serviceDatabaseUrls.operator, { max: 2 });
});

after(async () => {
  service.close();
  operator.close();
  await operatorPool.end();
  await pool.end();
});

describe('etcd authentication', () => {
  it('is on after setup, which is idempotent; each password is a 0600 file in a 0700 folder', async () => {
    assert.deepEqual(await ensureEtcdAuth(config), { enabled: 'already' });
    const dir = etcdCredentialsDir(config);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(dir).sort(), ['agent-a', 'agent-b', 'operator', 'patroni-a', 'patroni-b', 'root', 'service']);
    for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  });

  it("without credentials, as the services or as the CLI: no one puts or deletes `unprotected`, deletes an election key or revokes the leader's lease", async () => {
    const state = await waitFor('a leader', async () => (await new CaSiteReader(service, config).read()).leader, 60_000, 100);
    await assertOnlyAgentsWrite(config, state);
  });

  it('each credential still does what its holder needs (read; the CLI writes orders/); without credentials, nothing', async () => {
    await assertNeededAccess(config);
  });
});

describe('site orders', () => {
  it("an order in etcd with no recorded two-person row is refused by the leader's agent and changes nothing", async () => {
    const before = await new CaSiteReader(service, config).read();
    const leader = before.leader!;
    const names = await syncStandbyNames(config.sites[leader.site].databaseUrl);
    const id = randomUUID();
    await putSiteOrder(operator, config, id, order('site.unprotect'));
    const answer = await answerOf(id);
    assert.equal(answer.refused?.code, 'SITE_ORDER_NOT_RECORDED');
    assert.equal(answer.by, leader.site);
    const after = await new CaSiteReader(service, config).read();
    assert.deepEqual(after.unprotected, before.unprotected, '`unprotected` is as it was');
    assert.equal(await syncStandbyNames(config.sites[leader.site].databaseUrl), names, 'the primary still waits for its standby');
  });

  it("a forced failover ordered in etcd with no row is refused by the target's agent: the leader keeps its lease", async () => {
    const before = (await new CaSiteReader(service, config).read()).leader!;
    const to = before.site === 'a' ? 'b' : 'a';
    const id = randomUUID();
    await putSiteOrder(operator, config, id, order('site.failover', { to }));
    const answer = await answerOf(id);
    assert.deepEqual([answer.by, answer.refused?.code], [to, 'SITE_ORDER_NOT_RECORDED']);
    assert.equal((await new CaSiteReader(service, config).read()).leader?.lease, before.lease, 'the leader kept its lease');
  });

  it('a row recorded for another action does not back an order (SITE_ORDER_MISMATCH), and the row then says so', async () => {
    const id = randomUUID();
    await recordSiteOrder(operatorPool, { id, action: 'site.protect', payload: {}, proofs: [await adminProof('orders-admin')] });
    await putSiteOrder(operator, config, id, order('site.unprotect'));
    assert.equal((await answerOf(id)).refused?.code, 'SITE_ORDER_MISMATCH');
    assert.equal((await new CaSiteReader(service, config).read()).unprotected, undefined);
    assert.equal(((await readSiteOrder(pool, id))?.outcome?.refused as { code?: string } | undefined)?.code, 'SITE_ORDER_MISMATCH');
  });

  it("an order naming a database with connection parameters in it ('?host=') is refused before the agent connects anywhere", async () => {
    // A listener standing in for an attacker's server: the agent's owner connection must never reach it.
    const connections: string[] = [];
    const trap = createServer((socket) => {
      connections.push(`${socket.remoteAddress}:${socket.remotePort}`);
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    try {
      const port = (trap.address() as AddressInfo).port;
      // A replay of an order the agent has answered, now naming the trap (the agent used to answer a
      // replay from memory and record the refusal in the database the entry named).
      const answered = randomUUID();
      await putSiteOrder(operator, config, answered, order('site.unprotect'));
      assert.equal((await answerOf(answered)).refused?.code, 'SITE_ORDER_NOT_RECORDED');
      await putSiteOrder(operator, config, answered, order('site.unprotect', { database: `${config.pgDatabase}?host=127.0.0.1&port=${port}&sslmode=disable` }));
      await new Promise((r) => setTimeout(r, 2_000));
      assert.deepEqual(connections, [], 'the agent connected to the host a replayed order named');
      // New orders naming it.
      const forged = [randomUUID(), randomUUID()];
      await putSiteOrder(operator, config, forged[0]!, order('site.unprotect', { database: `${config.pgDatabase}?host=127.0.0.1&port=${port}&sslmode=disable` }));
      await putSiteOrder(operator, config, forged[1]!, order('site.failover', { to: 'b', database: `x?host=127.0.0.1&port=${port}` }));
      for (const id of forged) assert.equal((await answerOf(id)).refused?.code, 'SITE_ORDER_UNKNOWN');
      assert.deepEqual(connections, [], 'the agent connected to the host the order named');
    } finally {
      trap.close();
    }
  });

  it('the database records unprotect and failover orders only for two distinct administrators', async () => {
    const alice = await adminProof('orders-alice');
    await assert.rejects(recordSiteOrder(operatorPool, { id: randomUUID(), action: 'site.unprotect', payload: {}, proofs: [alice] }), { code: 'DUAL_CONTROL_REQUIRED' });
    await assert.rejects(recordSiteOrder(operatorPool, { id: randomUUID(), action: 'site.failover', payload: { to: 'b' }, proofs: [alice, alice] }), { code: 'APPROVAL_SAME_PEOPLE' });
    await assert.rejects(recordSiteOrder(operatorPool, { id: randomUUID(), action: 'site.unprotect', payload: {}, proofs: [alice, proofOf('not-a-token')] }), { code: 'AUTH_INVALID' });
    await assert.rejects(operatorPool.query(`INSERT INTO site_orders (id, action, people, credentials) VALUES ($1, 'site.unprotect', '{x,y}', '{x,y}')`, [randomUUID()]), /permission denied/);
  });

  it('a recorded order is carried out once, and only an agent answers: the same order put again changes nothing, and the operator cannot write an answer', async () => {
    // site.protect on protected sites: carried out, and harmless to the other tests.
    assert.equal((await new CaSiteReader(service, config).read()).unprotected, undefined, 'the sites run protected');
    const done = await placeSiteOrder(config, operatorPool, { action: 'site.protect', payload: {}, proofs: [await adminProof('orders-protect')] }, { timeoutMs: 30_000 });
    assert.ok(done.done, 'carried out');
    const row = await readSiteOrder(pool, done.id);
    assert.ok(row?.executedAt, 'the row says it was executed');
    await putSiteOrder(operator, config, done.id, order('site.protect'));
    // A few of the agents' polls (every 250 ms): the order is not carried out again, its answer stands.
    await new Promise((r) => setTimeout(r, 2_000));
    assert.ok((await answerOf(done.id)).done, 'the agent\'s answer is still "done"');
    assert.equal((await readSiteOrder(pool, done.id))?.executedAt?.getTime(), row.executedAt.getTime(), 'executed once');
    // Answers live where only the agents write: "protected again" cannot be said in an agent's name.
    const forged = { by: 'a', at: new Date().toISOString(), done: { site: 'a', wasUnprotectedSince: new Date().toISOString() } };
    await assert.rejects(async () => {
      await operator.namespace(config.consensus.prefix).put(`answers/${randomUUID()}`).value(JSON.stringify(forged));
    }, /permission denied/);
  });
});
