import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { isFleetError, type FleetConfig } from '@fleetpki/core';
import { copyRows, createPool, migrate, withTransaction } from '@fleetpki/store';
import { createScratchDatabase, ensureSites } from './support/sites.js';

let config: FleetConfig;
before(async () => {
  config = await ensureSites();
});

describe('migration runner', () => {
  it('applies each migration once, in order, and refuses edited or failing ones without partial state', async () => {
    const scratch = await createScratchDatabase(config);
    const pool = createPool(scratch.urlA, { max: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-mig-'));
    cpSync(join(config.repoRoot, 'migrations'), dir, { recursive: true });
    try {
      const first = await migrate(pool, dir);
      assert.ok(first.applied.length >= 1);
      const second = await migrate(pool, dir);
      assert.equal(second.applied.length, 0);
      assert.equal(second.alreadyApplied, first.applied.length);

      // Two runners at once: the advisory lock serialises them and the new migration applies once.
      writeFileSync(join(dir, '0900_extra.sql'), 'CREATE TABLE extra (id int);');
      const both = await Promise.all([migrate(pool, dir), migrate(pool, dir)]);
      assert.equal(both[0].applied.length + both[1].applied.length, 1);

      // A failing migration rolls back entirely and is not recorded.
      writeFileSync(join(dir, '0901_broken.sql'), 'CREATE TABLE half (id int); SELECT * FROM no_such_table;');
      await assert.rejects(migrate(pool, dir), (err: unknown) => isFleetError(err, 'MIGRATION_FAILED') && /0901_broken/.test(err.message));
      const half = await pool.query(`SELECT to_regclass('half') AS t`);
      assert.equal(half.rows[0].t, null);
      const recorded = await pool.query('SELECT max(version) AS v FROM schema_migrations');
      assert.equal(recorded.rows[0].v, 900);

      // Editing an applied migration is refused.
      writeFileSync(join(dir, '0901_broken.sql'), 'SELECT 1;');
      await migrate(pool, dir);
      writeFileSync(join(dir, '0900_extra.sql'), 'CREATE TABLE extra (id bigint);');
      await assert.rejects(migrate(pool, dir), (err: unknown) => isFleetError(err, 'MIGRATION_MODIFIED'));
    } finally {
      await pool.end();
      await scratch.drop();
    }
  });
});

describe('COPY and transactions', () => {
  it('bulk-writes rows with awkward values inside a transaction, and a throw rolls them back', async () => {
    const scratch = await createScratchDatabase(config);
    const pool = createPool(scratch.urlA, { max: 2 });
    try {
      await pool.query('CREATE TABLE t (id int, label text, blob bytea, at timestamptz, note text)');
      const rows = Array.from({ length: 5_000 }, (_, i) => [i, `tab\there\nnew \\ line ${i}`, Buffer.from([i & 0xff, 0]), new Date(Date.UTC(2026, 0, 1)), i % 2 ? null : 'x'] as const);
      await withTransaction(pool, (client) => copyRows(client, 't', ['id', 'label', 'blob', 'at', 'note'], rows));
      const { rows: back } = await pool.query('SELECT count(*)::int AS n, count(note)::int AS notes FROM t');
      assert.deepEqual(back[0], { n: 5_000, notes: 2_500 });
      const one = await pool.query('SELECT label, blob FROM t WHERE id = 7');
      assert.equal(one.rows[0].label, 'tab\there\nnew \\ line 7');
      assert.deepEqual(one.rows[0].blob, Buffer.from([7, 0]));

      await assert.rejects(
        withTransaction(pool, async (client) => {
          await copyRows(client, 't', ['id'], [[1], [2]]);
          throw new Error('abort');
        }),
        /abort/,
      );
      const after = await pool.query('SELECT count(*)::int AS n FROM t');
      assert.equal(after.rows[0].n, 5_000);
    } finally {
      await pool.end();
      await scratch.drop();
    }
  });
});
