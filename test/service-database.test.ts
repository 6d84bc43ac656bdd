import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { entryPoint, type FleetConfig } from '@fleetpki/core';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { createPool, insertCa, listCas, migrate, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { createScratchDatabase, ensureSites } from './support/sites.js';

/**
 * A service follows the database it is pointed at: its connections (as pg_stat_activity sees them) are
 * in that database, and a configuration whose owner and service connections name different databases
 * stops the process at start-up with CONFIG_INVALID naming both. (The OCSP benchmark once waited for
 * ever because its responder wrote into the installation's database instead of the synthetic one.)
 */
let config: FleetConfig;
let pool: Pool;
let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  scratch = await createScratchDatabase(config);
  const other = createPool(scratch.urlA, { max: 1 });
  try {
    await migrate(other, join(config.repoRoot, 'migrations'));
    for (const ca of await listCas(pool)) await insertCa(other, ca);
  } finally {
    await other.end();
  }
});

after(async () => {
  await scratch?.drop();
  await pool?.end();
});

/** Runs a service to its start-up failure and returns its exit code and stderr. */
function failingStart(env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, entryPoint(config.repoRoot, 'status-responder'), { env: { ...process.env, FLEETPKI_LOG_LEVEL: 'warn', ...env }, timeout: 60_000 }, (err, _stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('a service and its database', () => {
  it('connects to the database FLEETPKI_DATABASE_URL names, as the service role (pg_stat_activity)', async () => {
    const port = config.sites.a.statusPort + 200;
    const responder = startService(config, 'status-responder', { FLEETPKI_SITE: 'a', FLEETPKI_DATABASE_URL: scratch.urlA, FLEETPKI_PG_DATABASE: undefined, FLEETPKI_STATUS_PORT_A: String(port) });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`);
      const { rows } = await pool.query<{ datname: string; usename: string }>(`SELECT datname, usename FROM pg_stat_activity WHERE application_name = 'fleetpki-status-a'`);
      assert.ok(rows.length > 0, 'the responder holds connections');
      assert.deepEqual(new Set(rows.map((r) => r.datname)), new Set([scratch.name]), 'every connection is in the database it was pointed at');
      assert.deepEqual(new Set(rows.map((r) => r.usename)), new Set(['fleetpki_status']));
    } finally {
      await stopProcess(responder);
    }
  });

  it('refuses to start when the service connection names another database than the owner connection', async () => {
    const { code, stderr } = await failingStart({ FLEETPKI_DATABASE_URL: scratch.urlA, FLEETPKI_PG_DATABASE: undefined, FLEETPKI_SERVICE_DATABASE_URL: config.sites.a.serviceDatabaseUrls.status });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /CONFIG_INVALID/);
    assert.ok(stderr.includes(`/${config.pgDatabase}`) && stderr.includes(`/${scratch.name}`), stderr);
  });

  it('refuses to start when FLEETPKI_DATABASE_URL and FLEETPKI_PG_DATABASE disagree', async () => {
    const { code, stderr } = await failingStart({ FLEETPKI_DATABASE_URL: scratch.urlA, FLEETPKI_PG_DATABASE: config.pgDatabase });
    assert.equal(code, 1, stderr);
    assert.match(stderr, new RegExp(`CONFIG_INVALID: .*names database "${scratch.name}" but FLEETPKI_PG_DATABASE is "${config.pgDatabase}"`));
  });
});
