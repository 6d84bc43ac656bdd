import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import type { FleetConfig } from '@fleetpki/core';
import { probeRedis } from '@fleetpki/queue';
import { processesUnder, sitesDown, sitesStatus, sitesUp, stopAgent, stopCluster } from '@fleetpki/sites';
import { createPool, migrate } from '@fleetpki/store';
import { createScratchDatabase, ensureSites, waitFor } from './support/sites.js';

let config: FleetConfig;

before(async () => {
  config = await ensureSites();
});

after(async () => {
  // Leave the topology as the next test file expects it, whatever happened here.
  await sitesUp(config);
});

describe('local two-site topology', () => {
  it('reports A as primary with B streaming synchronously, and B as hot standby', async () => {
    const [a, b] = await sitesStatus(config);
    assert.equal(a!.postgres.up, true);
    assert.equal(a!.postgres.role, 'primary');
    assert.deepEqual(
      a!.postgres.standbys?.map((s) => [s.name, s.state, s.sync]),
      [['site_b', 'streaming', 'sync']],
    );
    assert.equal(b!.postgres.role, 'standby');
    assert.equal(a!.caRole, 'active');
    assert.equal(b!.caRole, 'standby');
    assert.equal(a!.hsm.ready && b!.hsm.ready, true);
  });

  it("answers on each site's Redis", async () => {
    for (const site of [config.sites.a, config.sites.b]) {
      const health = await probeRedis(site.redisUrl);
      assert.equal(health.up, true, `redis of site ${site.id}: ${health.error}`);
    }
  });

  it('shows a migration applied on A on the standby B within a second, and refuses writes on B', async () => {
    const scratch = await createScratchDatabase(config);
    const poolA = createPool(scratch.urlA, { max: 1 });
    const poolB = createPool(scratch.urlB, { max: 1 });
    try {
      const result = await migrate(poolA, join(config.repoRoot, 'migrations'));
      assert.ok(result.applied.length >= 1);
      const appliedAt = Date.now();
      const versions = await waitFor(
        'the migration on B',
        async () => {
          const { rows } = await poolB.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
          return rows[0]!.n === result.applied.length ? rows[0]!.n : undefined;
        },
        1_000,
      );
      assert.equal(versions, result.applied.length);
      assert.ok(Date.now() - appliedAt <= 1_000);
      await assert.rejects(poolB.query(`INSERT INTO manufacturers (id, name) VALUES ('acme', 'Acme')`), (err: Error & { code?: string }) => {
        assert.equal(err.code, '25006'); // read_only_sql_transaction
        return true;
      });
    } finally {
      await poolA.end();
      await poolB.end();
      await scratch.drop();
    }
  });

  it('blocks a commit on A while B is stopped (synchronous replication), and completes it once B is back', async () => {
    const scratch = await createScratchDatabase(config);
    const poolA = createPool(scratch.urlA, { max: 2 });
    try {
      await poolA.query('CREATE TABLE marker (id int PRIMARY KEY)');
      // B's host goes down: its agent (which would restart its PostgreSQL at once) and its PostgreSQL.
      await stopAgent(config.sites.b);
      await stopCluster(config.sites.b);
      let committed = false;
      const insert = poolA.query('INSERT INTO marker VALUES (1)').then(() => {
        committed = true;
      });
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal(committed, false, 'the commit returned although the synchronous standby was down');
      await sitesUp(config);
      await waitFor('the blocked commit', async () => (committed ? true : undefined), 30_000);
      await insert;
      const poolB = createPool(scratch.urlB, { max: 1 });
      try {
        const { rows } = await poolB.query('SELECT id FROM marker');
        assert.deepEqual(rows, [{ id: 1 }]);
      } finally {
        await poolB.end();
      }
    } finally {
      await poolA.end();
      await scratch.drop();
    }
  });

  it('keeps the data across sites down / up, leaves no process behind, and a second up is a no-op', async () => {
    const scratch = await createScratchDatabase(config);
    let pool = createPool(scratch.urlA, { max: 1 });
    try {
      await pool.query(`CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives restart')`);
      await pool.end();

      await sitesDown(config);
      assert.deepEqual(processesUnder(config.stateDir), [], 'processes still running after sites down');
      const down = await sitesStatus(config);
      assert.ok(down.every((s) => !s.postgres.up && !s.redis.up));

      await sitesUp(config);
      const lines: string[] = [];
      await sitesUp(config, (line) => lines.push(line));
      assert.ok(lines.some((l) => /PostgreSQL primary .* running$/.test(l)), lines.join('\n'));
      assert.ok(lines.every((l) => !/(started|created|initialised)/.test(l)), `second up changed something:\n${lines.join('\n')}`);

      pool = createPool(scratch.urlA, { max: 1 });
      const { rows } = await pool.query('SELECT v FROM kept');
      assert.deepEqual(rows, [{ v: 'survives restart' }]);
    } finally {
      await pool.end().catch(() => undefined);
      await scratch.drop();
    }
  });
});
