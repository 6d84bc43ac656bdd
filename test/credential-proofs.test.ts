import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { issueApiToken } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { createPool, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * Issue 33 §2, as one administrator holding the CLI's database role (fleetpki_operator) would try it:
 * her own request, approved "as" a colleague with what the role can read about the colleague's token
 * (its id), claimed, then a new administrator and a token of her choosing. The rule functions must
 * take proof of possession (the secret's SHA-256, which no role can read), and write their own audit
 * rows in the caller's transaction.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let owner: Pool;
let operator: Pool;
const run = randomBytes(3).toString('hex');

before(async () => {
  config = await ensureSites();
  owner = siteAPool(config);
  await ensureCa(config, owner);
  operator = createPool(config.sites.a.serviceDatabaseUrls.operator, { max: 2, applicationName: 'fleetpki-test-operator' });
});

after(async () => {
  await operator?.end();
  await owner?.end();
});

const sha256hex = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** An administrator: the token's secret, its id (readable by the operator role), and its proof. */
async function administrator(name: string) {
  const secret = await issueApiToken(owner, { site: 'a', actor: 'test', name, role: 'administrator', manufacturerId: null, expiresDays: 1 });
  const { rows } = await operator.query<{ id: string }>('SELECT id FROM api_tokens WHERE name = $1', [name]);
  return { name, secret, id: rows[0]!.id, proof: `token:${sha256hex(secret)}` };
}

/**
 * How the rule functions name one's own credential. Before migration 0026 they took the token's id;
 * this lets the test run against that schema too, where it shows the forgery accepted.
 */
async function ownCredential(admin: { id: string; proof: string }): Promise<string> {
  const { rows } = await operator.query<{ args: string }>("SELECT pg_get_function_arguments(p.oid) AS args FROM pg_proc p WHERE p.proname = 'fp_credential_people'");
  return rows[0]!.args.includes('p_proof') ? admin.proof : `token:${admin.id}`;
}

async function attempt(db: Pool, sql: string, params: unknown[] = []): Promise<{ ok: true; rows: Record<string, unknown>[] } | { ok: false; message: string }> {
  try {
    return { ok: true, rows: (await db.query(sql, params)).rows };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

describe('dual control the database can prove', () => {
  it("one administrator with the CLI's role cannot approve her own request as a colleague, nor mint an administrator", async () => {
    const alice = await administrator(`proof-alice-${run}`);
    const bob = await administrator(`proof-bob-${run}`);
    const mallory = `proof-mallory-${run}`;
    const approval = randomUUID();
    const requested = await attempt(operator, 'SELECT id FROM fp_approval_request($1, $2, $3, $4, $5, $6)', [approval, 'person.create', JSON.stringify({ name: mallory, role: 'administrator' }), 'x', await ownCredential(alice), 600]);
    assert.equal(requested.ok, true, JSON.stringify(requested));

    // Everything the operator role can read that names bob's credential.
    const readable = [`token:${bob.id}`, ...(await operator.query<{ c: string }>('SELECT requested_by AS c FROM approval_requests WHERE requested_by_name = $1', [bob.name])).rows.map((r) => r.c)];
    for (const forged of readable) {
      const approved = await attempt(operator, 'SELECT id FROM fp_approval_approve($1, $2)', [approval, forged]);
      assert.equal(approved.ok, false, `approved as bob with "${forged}", which the operator role can read`);
      assert.match(approved.ok ? '' : approved.message, /AUTH_INVALID/);
    }
    // The hash of bob's secret is what proves him, and no role can read it.
    assert.equal((await attempt(operator, 'SELECT token_sha256 FROM api_tokens')).ok, false);

    const claimed = await attempt(operator, 'SELECT id FROM fp_approval_claim($1, $2, $3)', [approval, 'person.create', await ownCredential(alice)]);
    assert.equal(claimed.ok, false, 'claimed without a second approval');
    const made = await attempt(operator, 'SELECT fp_person_create($1, $2, $3, $4, $5, $6)', [randomUUID(), mallory, 'administrator', null, await ownCredential(alice), approval]);
    assert.equal(made.ok, false, 'a new administrator without a second person');
    assert.equal((await owner.query('SELECT 1 FROM people WHERE name = $1', [mallory])).rowCount, 0);
  });

  it('with two real proofs it works, and each step is audited by the database in the same transaction', async () => {
    const alice = await administrator(`proof-alice2-${run}`);
    const bob = await administrator(`proof-bob2-${run}`);
    const approval = randomUUID();
    const person = `proof-carol-${run}`;
    // Rolled back: the request and its audit row go together.
    const client = await operator.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT id FROM fp_approval_request($1, $2, $3, $4, $5, $6)', [approval, 'person.create', JSON.stringify({ name: person, role: 'auditor' }), 'x', alice.proof, 600]);
      const inside = await client.query<{ actor: string; details: { credential: string } }>("SELECT actor, details FROM audit_events WHERE action = 'approval.request' AND subject = $1", [approval]);
      assert.deepEqual(inside.rows.map((r) => [r.actor, r.details.credential]), [[`person:${alice.name}`, `token:${alice.id}`]], 'the function wrote the audit row, naming the public credential, not the proof');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    assert.equal((await owner.query("SELECT 1 FROM audit_events WHERE action = 'approval.request' AND subject = $1", [approval])).rowCount, 0, 'rolled back with the request');

    await operator.query('SELECT id FROM fp_approval_request($1, $2, $3, $4, $5, $6)', [approval, 'person.create', JSON.stringify({ name: person, role: 'auditor' }), 'x', alice.proof, 600]);
    await operator.query('SELECT id FROM fp_approval_approve($1, $2)', [approval, bob.proof]);
    await operator.query('SELECT id FROM fp_approval_claim($1, $2, $3)', [approval, 'person.create', alice.proof]);
    // Only the executor gives the claim back, or notes the outcome.
    const released = await attempt(operator, 'SELECT fp_approval_release($1, $2)', [approval, bob.proof]);
    assert.match(released.ok ? '' : released.message, /APPROVAL_EXECUTOR_INVALID/);
    const personId = randomUUID();
    await operator.query('SELECT fp_person_create($1, $2, $3, $4, $5, $6)', [personId, person, 'auditor', null, alice.proof, approval]);
    await operator.query('SELECT fp_token_create($1, $2, $3, $4, $5, $6, $7)', [randomUUID(), personId, person, createHash('sha256').update(`fpk_${run}`).digest(), null, alice.proof, approval]);
    const { rows } = await owner.query<{ action: string; actor: string }>(
      "SELECT action, actor FROM audit_events WHERE (subject = $1 AND action LIKE 'approval.%') OR (action = 'person.create' AND subject = $2) OR (action = 'token.create' AND details->>'person' = $3) ORDER BY seq",
      [approval, personId, person],
    );
    assert.deepEqual(
      rows.map((r) => `${r.action} ${r.actor}`),
      [`approval.request person:${alice.name}`, `approval.approve person:${bob.name}`, `approval.execute person:${alice.name}`, `person.create person:${alice.name}`, `token.create person:${alice.name}`],
    );
  });

  it('a client certificate is no proof the database can check: the rules say so', async () => {
    const refused = await attempt(operator, 'SELECT id FROM fp_approval_approve($1, $2)', [randomUUID(), 'cert:0a1b2c']);
    // The approval does not exist either; the credential is judged first or second, never accepted.
    assert.match(refused.ok ? '' : refused.message, /CREDENTIAL_PROOF_REQUIRED|APPROVAL_NOT_FOUND/);
    const people = await attempt(operator, 'SELECT * FROM fp_credential_people($1)', ['cert:0a1b2c']);
    assert.match(people.ok ? '' : people.message, /CREDENTIAL_PROOF_REQUIRED/);
  });
});
