import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { sealAuditLog, verifyAuditLog } from '@fleetpki/ca';
import { appendAuditEvents, createPool, migrate, type Pool } from '@fleetpki/store';
import { createScratchDatabase, ensureSites } from './support/sites.js';

let pool: Pool;
let drop: () => Promise<void>;
let checkpoints: string;
let round = 0;

/** A fresh log of 30 events in three sealed stretches, each test tampering with its own copy. */
async function sealedLog(): Promise<string[]> {
  // The tests play an attacker with the table owner's rights: the append-only triggers are off for them.
  await pool.query('ALTER TABLE audit_events DISABLE TRIGGER USER; ALTER TABLE audit_seals DISABLE TRIGGER USER');
  await pool.query('TRUNCATE audit_events, audit_seals RESTART IDENTITY');
  checkpoints = join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), `checkpoints-${round++}.ndjson`);
  for (let stretch = 0; stretch < 3; stretch++) {
    await appendAuditEvents(pool, Array.from({ length: 10 }, (_, i) => ({ site: 'a' as const, actor: 'test', action: 'test.event', subject: `s${stretch}-${i}`, details: { n: i, nested: { b: 2, a: 1 } } })));
    const sealed = await sealAuditLog(pool, checkpoints, { settleMs: 0, gapSettleMs: 0 });
    assert.equal(sealed.sealed, 10);
  }
  return (await pool.query<{ seq: string }>('SELECT seq::text FROM audit_events ORDER BY audit_events.seq')).rows.map((r) => r.seq);
}

before(async () => {
  const config = await ensureSites();
  const scratch = await createScratchDatabase(config);
  drop = scratch.drop;
  pool = createPool(scratch.urlA, { max: 2 });
  await migrate(pool, join(config.repoRoot, 'migrations'));
});

after(async () => {
  await pool?.end();
  await drop?.();
});

describe('append-only audit tables', () => {
  it('refuse UPDATE, DELETE and TRUNCATE, but let the sealer set a chain hash once', async () => {
    await pool.query('ALTER TABLE audit_events ENABLE TRIGGER USER; ALTER TABLE audit_seals ENABLE TRIGGER USER');
    await appendAuditEvents(pool, [{ site: 'a', actor: 'test', action: 'test.append-only' }]);
    const { rows } = await pool.query<{ seq: string }>('SELECT max(seq)::text AS seq FROM audit_events');
    const seq = rows[0]!.seq;
    await assert.rejects(pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [seq]), /append-only: UPDATE refused/);
    await assert.rejects(pool.query('DELETE FROM audit_events WHERE seq = $1', [seq]), /append-only: DELETE refused/);
    await assert.rejects(pool.query('TRUNCATE audit_events'), /append-only: TRUNCATE refused/);
    await sealAuditLog(pool, join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), 'c.ndjson'), { settleMs: 0 });
    await assert.rejects(pool.query(`UPDATE audit_events SET chain_hash = '\\x00' WHERE seq = $1`, [seq]), /append-only: UPDATE refused/);
    await assert.rejects(pool.query('DELETE FROM audit_seals'), /audit_seals is append-only/);
  });
});

describe('tamper-evident audit log', () => {
  let seqs: string[];
  beforeEach(async () => {
    seqs = await sealedLog();
  });

  it('an untouched log verifies', async () => {
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual([r.rows, r.sealedUpTo, r.problems], [30, seqs[29], []]);
  });

  it('reports a modified record at its seq', async () => {
    await pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [seqs[12]]);
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [['modified', seqs[12]]]);
  });

  it('reports a deleted record inside a sealed stretch', async () => {
    await pool.query('DELETE FROM audit_events WHERE seq = $1', [seqs[15]]);
    const r = await verifyAuditLog(pool, checkpoints);
    assert.ok(r.problems.some((p) => p.kind === 'deleted' && p.seq === seqs[19] && /1 row\(s\) missing/.test(p.detail)), JSON.stringify(r.problems));
    assert.ok(r.problems.some((p) => p.kind === 'modified' && p.seq === seqs[16]), 'the next row no longer links');
  });

  it('reports two records that swapped places', async () => {
    // seq is an identity column; swapping everything else is the same reordering.
    await pool.query(
      `UPDATE audit_events e SET at = o.at, actor = o.actor, action = o.action, subject = o.subject, details = o.details
         FROM audit_events o WHERE (e.seq, o.seq) IN (($1::bigint, $2::bigint), ($2::bigint, $1::bigint))`,
      [seqs[3], seqs[4]],
    );
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual(r.problems.map((p) => p.kind), ['modified', 'modified']);
    assert.deepEqual(r.problems.map((p) => p.seq), [seqs[3], seqs[4]]);
  });

  it('reports a truncated tail, seals and all, from the checkpoint file', async () => {
    await pool.query('DELETE FROM audit_events WHERE seq > $1', [seqs[19]]);
    await pool.query('DELETE FROM audit_seals WHERE seq > $1', [seqs[19]]);
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [['truncated', seqs[29]]]);
    assert.match(r.problems[0]!.detail, new RegExp(`sealed up to seq ${seqs[29]}; the database ends at ${seqs[19]}`));
  });

  it('leaves rows younger than the settle time for the next seal', async () => {
    await appendAuditEvents(pool, [{ site: 'a', actor: 'test', action: 'test.late' }]);
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 60_000 })).sealed, 0);
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 0 })).sealed, 1);
    assert.deepEqual((await verifyAuditLog(pool, checkpoints)).problems, []);
  });

  it('waits at a young hole in the seq numbers (a transaction may still commit there), then seals past it', async () => {
    // A rolled-back insert leaves a hole, as an open transaction would.
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await appendAuditEvents(client, [{ site: 'a', actor: 'test', action: 'test.rolled-back' }]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await appendAuditEvents(pool, [{ site: 'a', actor: 'test', action: 'test.after-hole' }]);
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 0 })).sealed, 0, 'stops at the hole while it is young');
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 0, gapSettleMs: 0 })).sealed, 1);
    assert.deepEqual((await verifyAuditLog(pool, checkpoints)).problems, []);
  });
});
