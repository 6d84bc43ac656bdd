import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { issueApiToken, sealAuditLog, verifyAuditLog, type AuditSigner } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { createPool, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

// Seals in a test deployment are signed once an earlier test sealed with the HSM's audit key; this file
// looks at chain hashes, not signatures, so a stand-in signer keeps it independent of test order.
const standInSigner: AuditSigner = { keyId: Buffer.alloc(20), sign: async () => Buffer.from('stand-in') };

/**
 * Review of issues 33 §2 and 40 §3 (branch review-1), as the holder of a database role would try it
 * after migrations 0026/0027: what the roles can still write, and what the rule functions still accept.
 * Each attempt that would change shared state runs in a transaction that is rolled back.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let owner: Pool;
let operator: Pool;
let issuer: Pool;
let worker: Pool;
const run = randomBytes(3).toString('hex');

before(async () => {
  config = await ensureSites();
  owner = siteAPool(config);
  await ensureCa(config, owner);
  const pool = (client: 'operator' | 'issuer' | 'worker') => createPool(config.sites.a.serviceDatabaseUrls[client], { max: 2, applicationName: `fleetpki-review-${client}` });
  operator = pool('operator');
  issuer = pool('issuer');
  worker = pool('worker');
});

after(async () => {
  await Promise.all([operator, issuer, worker].map((p) => p?.end()));
  await owner?.end();
});

const sha256 = (secret: string) => createHash('sha256').update(secret).digest();
const proofOf = (secret: string) => `token:${sha256(secret).toString('hex')}`;

/** Runs `fn` in a transaction of `pool` that is always rolled back; returns what it returned or the error's message. */
async function rolledBack<T>(pool: Pool, fn: (q: (sql: string, params?: unknown[]) => Promise<Record<string, unknown>[]>) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; message: string }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      return { ok: true, value: await fn(async (sql, params = []) => (await client.query(sql, params)).rows) };
    } catch (err) {
      return { ok: false, message: (err as Error).message };
    }
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

/** An administrator made at installation (bootstrap: created by nobody), as the test support makes them. */
async function bootstrapAdministrator(name: string): Promise<{ name: string; proof: string }> {
  const secret = await issueApiToken(owner, { site: 'a', actor: 'test', name, role: 'administrator', manufacturerId: null, expiresDays: 1 });
  return { name, proof: proofOf(secret) };
}

describe('review: what a database role can still do', () => {
  it('the CLI role (fleetpki_operator) cannot revoke the issuing CA without an approved ca.revoke', async () => {
    const outcome = await rolledBack(operator, async (q) => {
      await q(`UPDATE cas SET status = 'revoked', revoked_at = now(), revocation_reason = 1 WHERE id = 'fpd1'`);
      const after = (await q(`SELECT status FROM cas WHERE id = 'fpd1'`))[0]!.status;
      // And it is final: not even the same role can take it back (cas_revocation_is_final, 0026).
      const undo = await q(`SAVEPOINT s`).then(() => q(`UPDATE cas SET status = 'active' WHERE id = 'fpd1'`)).then(() => 'undone', (err: Error) => err.message);
      return { after, undo };
    });
    assert.equal(outcome.ok, false, `fleetpki_operator revoked fpd1 with one UPDATE and no approval: ${JSON.stringify(outcome)}`);
  });

  it('the CLI role cannot take back the revocation of a client certificate (an administrator\'s credential)', async () => {
    const admin = await bootstrapAdministrator(`review-certholder-${run}`);
    const person = (await owner.query<{ id: string }>('SELECT id FROM people WHERE name = $1', [admin.name])).rows[0]!.id;
    const serial = randomBytes(8);
    serial[0] = 0x42;
    await owner.query(
      `INSERT INTO organisation_certificates (serial, purpose, subject_dn, role, key_id, certificate, not_after, person_id, revoked_at) VALUES ($1, 'client', 'CN=review', 'administrator', '\\x00', '\\x00', now() + interval '1 year', $2, now())`,
      [serial, person],
    );
    const outcome = await rolledBack(operator, async (q) => {
      await q('UPDATE organisation_certificates SET revoked_at = NULL WHERE serial = $1', [serial]);
      // The issuer then signs the administrator in to the console with the withdrawn certificate.
      return 'un-revoked';
    });
    assert.equal(outcome.ok, false, `fleetpki_operator un-revoked an administrator's client certificate: ${JSON.stringify(outcome)}`);
  });

  it('no service role writes an audit row that only a rule function writes (approval.approve in a person\'s name)', async () => {
    const approval = randomUUID();
    const outcome = await rolledBack(worker, async (q) => {
      await q(`SELECT fp_audit_append(ARRAY['a'], ARRAY['person:alice'], ARRAY['approval.approve'], ARRAY[$1::text], ARRAY[$2::jsonb])`, [approval, JSON.stringify({ action: 'ca.revoke', requestedBy: 'bob', credential: `token:${randomUUID()}` })]);
      return (await q('SELECT actor, action, subject, details FROM audit_events WHERE subject = $1', [approval]))[0];
    });
    assert.equal(outcome.ok, false, `fleetpki_worker wrote an "approval.approve" row as person:alice, indistinguishable from the one fp_approval_approve writes: ${JSON.stringify(outcome)}`);
  });

  it('no role seals audit rows with chain hashes of its choosing (the chain would read "modified" for good)', async () => {
    // Rows to seal: whatever is unsealed in this deployment's log, plus one of ours.
    await owner.query(`SELECT fp_audit_append(ARRAY['a'], ARRAY['review'], ARRAY['review.row'], ARRAY[NULL]::text[], ARRAY['{}'::jsonb])`);
    const { rows } = await operator.query<{ seq: string }>(`SELECT seq::text FROM audit_events WHERE chain_hash IS NULL AND seq > coalesce((SELECT max(seq) FROM audit_seals), 0) ORDER BY seq`);
    const seqs = rows.map((r) => r.seq);
    const forged = await operator
      // A signature of any bytes: the database cannot check one (`audit verify` does), so what stops
      // the forgery must be the hashes; with NULL the refusal would be AUDIT_SEAL_UNSIGNED instead.
      .query(`SELECT fp_audit_seal($1::bigint[], $2::bytea[], '\\x01', 'stand-in')`, [seqs, seqs.map(() => randomBytes(32))])
      .then(() => 'sealed', (err: Error) => err.message);
    // What the auditor sees from then on, even after the sealer has sealed more rows properly.
    const checkpoints = join(mkdtempSync(join(tmpdir(), 'fleetpki-review-audit-')), 'checkpoints.ndjson');
    await owner.query(`SELECT fp_audit_append(ARRAY['a'], ARRAY['review'], ARRAY['review.row'], ARRAY[NULL]::text[], ARRAY['{}'::jsonb])`);
    await sealAuditLog(owner, checkpoints, { settleMs: 0, gapSettleMs: 0, signer: standInSigner });
    const verdict = await verifyAuditLog(owner, checkpoints);
    const modified = verdict.problems.filter((p) => p.kind === 'modified').length;
    assert.match(forged, /AUDIT_SEAL_INVALID/, `fleetpki_operator sealed ${seqs.length} rows with random chain hashes (${forged}); audit verify now reports ${modified} untouched rows as modified, and no later seal can repair it`);
    assert.equal(modified, 0, 'the proper seal after the refused one verifies');
  });

  it('an approval lives no longer than the configured TTL, whoever asks', async () => {
    const alice = await bootstrapAdministrator(`review-ttl-${run}`);
    const outcome = await rolledBack(operator, async (q) => {
      const [r] = await q(`SELECT expires_at FROM fp_approval_request($1, 'site.switchover', '{}', 'x', $2, $3)`, [randomUUID(), alice.proof, 10 * 365 * 86_400]);
      return r!.expires_at as Date;
    });
    const limit = Date.now() + 24 * 3_600_000;
    assert.ok(!outcome.ok || outcome.value.getTime() <= limit, `an approval request valid until ${outcome.ok ? outcome.value.toISOString() : '?'} (FLEETPKI_APPROVAL_TTL_MINUTES defaults to 240): the TTL is the caller's argument`);
  });
});

describe('review: the rule functions and the people behind a credential', () => {
  it('a person.create approval for an auditor does not mint a token for an existing administrator of that name', async () => {
    const alice = await bootstrapAdministrator(`review-pc-alice-${run}`);
    const bob = await bootstrapAdministrator(`review-pc-bob-${run}`);
    const carol = await bootstrapAdministrator(`review-pc-carol-${run}`);
    const carolId = (await owner.query<{ id: string }>('SELECT id FROM people WHERE name = $1', [carol.name])).rows[0]!.id;
    const approval = randomUUID();
    // Bob approves "create an auditor called carol": carol exists, as an administrator.
    await operator.query(`SELECT id FROM fp_approval_request($1, 'person.create', $2, 'a new auditor', $3, 600)`, [approval, JSON.stringify({ name: carol.name, role: 'auditor' }), alice.proof]);
    await operator.query('SELECT id FROM fp_approval_approve($1, $2)', [approval, bob.proof]);
    await operator.query(`SELECT id FROM fp_approval_claim($1, 'person.create', $2)`, [approval, alice.proof]);
    const secret = `fpk_review_${randomBytes(16).toString('hex')}`;
    const outcome = await rolledBack(operator, async (q) => {
      await q('SELECT fp_token_create($1, $2, $3, $4, NULL, $5, $6)', [randomUUID(), carolId, carol.name, sha256(secret), alice.proof, approval]);
      return (await q('SELECT person_name, role FROM fp_credential_people($1)', [proofOf(secret)]))[0];
    });
    assert.equal(outcome.ok, false, `alice now holds a secret of her choosing for administrator carol, on an approval to create an auditor: ${JSON.stringify(outcome)}`);
  });

  it('an administrator cannot approve her own request through people whose first tokens she minted', async () => {
    // Alice and bob are the installation's two administrators; bob approves two new administrators,
    // each first token being minted by the one who executes its creation (as `tokens create` does).
    const alice = await bootstrapAdministrator(`review-lg-alice-${run}`);
    const bob = await bootstrapAdministrator(`review-lg-bob-${run}`);
    const create = async (executor: { proof: string }, name: string): Promise<{ name: string; proof: string }> => {
      const approval = randomUUID();
      await operator.query(`SELECT id FROM fp_approval_request($1, 'person.create', $2, 'a new administrator', $3, 600)`, [approval, JSON.stringify({ name, role: 'administrator' }), executor.proof]);
      await operator.query('SELECT id FROM fp_approval_approve($1, $2)', [approval, bob.proof]);
      await operator.query(`SELECT id FROM fp_approval_claim($1, 'person.create', $2)`, [approval, executor.proof]);
      const id = randomUUID();
      const secret = `fpk_review_${randomBytes(16).toString('hex')}`;
      await operator.query('SELECT fp_person_create($1, $2, $3, NULL, $4, $5)', [id, name, 'administrator', executor.proof, approval]);
      await operator.query('SELECT fp_token_create($1, $2, $3, $4, NULL, $5, $6)', [randomUUID(), id, name, sha256(secret), executor.proof, approval]);
      return { name, proof: proofOf(secret) };
    };
    const x = await create(alice, `review-lg-x-${run}`); // x's token: minted by alice, so alice holds it
    const y = await create(x, `review-lg-y-${run}`); // y's token: minted by "x", i.e. by alice again

    // Alice alone now: her request, "y" approves, she executes.
    const request = randomUUID();
    await operator.query(`SELECT id FROM fp_approval_request($1, 'person.create', $2, 'mallory', $3, 600)`, [request, JSON.stringify({ name: `review-lg-mallory-${run}`, role: 'administrator' }), alice.proof]);
    const approved = await rolledBack(operator, async (q) => {
      await q('SELECT id FROM fp_approval_approve($1, $2)', [request, y.proof]);
      await q(`SELECT id FROM fp_approval_claim($1, 'person.create', $2)`, [request, alice.proof]);
      return 'approved by y and claimed by alice';
    });
    assert.equal(approved.ok, false, `alice, holding tokens she minted (x) or had x mint (y), approved and executed her own request: ${JSON.stringify(approved)}`);
  });
});
