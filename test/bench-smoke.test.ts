import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureStandbyKeys } from './support/custody.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * Every benchmark at a tiny size, as `pnpm bench NAME --json` runs it: it must exit 0 within its
 * deadline and print, as its last line, a JSON object with every field README.md documents for it.
 * Benchmarks are not tested for their figures (tests never assert timings), only for working.
 */
let config: FleetConfig;

/** Arguments that keep each run to a few seconds; every benchmark the README lists must be here. */
const TINY: Record<string, string[][]> = {
  enrol: [['--seconds', '2', '--clients', '8']],
  batch: [['--devices', '300'], ['--devices', '300', '--public-keys'], ['--devices', '200', '--hybrid']],
  ocsp: [['--certificates', '300', '--seconds', '2', '--revoke', '100']],
  crl: [['--revoked', '500', '--request', '150']],
  keys: [['--devices', '200']],
  sign: [['--seconds', '1', '--threads', '1']],
  failover: [['--stored', '0', '--devices', '300', '--runs', '1']],
  cmp: [['--seconds', '2', '--clients', '4', '--flood-rate', '50', '--flood-addresses', '1']],
  startup: [['--runs', '1']],
  backup: [['--stored', '1000', '--devices', '300']],
};

/** The README's benchmark table: name -> documented fields (dotted paths into the JSON line). */
function documentedFields(): Map<string, string[]> {
  const readme = readFileSync(join(config.repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Benchmarks'), readme.indexOf('\n## ', readme.indexOf('## Benchmarks') + 5));
  const fields = new Map<string, string[]>();
  for (const row of section.split('\n').filter((l) => /^\| `[a-z]+` \|/.test(l))) {
    const cells = row.split('|').map((c) => c.trim());
    const name = /`([a-z]+)`/.exec(cells[1]!)![1]!;
    // Fields in parentheses apply to one variant (e.g. --hybrid); they are checked for that variant.
    fields.set(name, [...cells[3]!.matchAll(/`([a-z0-9_.]+)`/g)].map((m) => m[1]!));
  }
  return fields;
}

function valueAt(object: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, key) => (v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>)[key]), object);
}

/**
 * No synthetic database is left once a benchmark has ended. Waited for (up to 60 s), not read once: the
 * benchmark's clean-up is bounded (20 s), and a drop still under way then completes after the process
 * exits. A CI run once saw the count at 1 right after the exit, in a test that took 39 s instead of ~6 s
 * (why it was slow was not found); a drop that never happens still fails here.
 */
async function noBenchDatabaseLeft(): Promise<void> {
  const pool = siteAPool(config);
  try {
    const left = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'bench\\_%'`)).rows[0]!.n;
    await waitFor('no bench_ database left (the synthetic database dropped)', async () => ((await left()) === 0 ? true : undefined), 60_000, 250);
  } finally {
    await pool.end();
  }
}

function bench(name: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(config.repoRoot, 'scripts', 'bench.sh'), name, ...args, '--json', '--hsm-seconds', '1', '--deadline', '150'],
      { env: { ...process.env, FLEETPKI_LOG_LEVEL: 'warn' }, timeout: 200_000, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  config = await ensureSites();
  const pool = siteAPool(config);
  try {
    await ensureCa(config, pool);
    // The failover benchmark needs site B's clone of the CA keys.
    await ensureStandbyKeys(pool);
  } finally {
    await pool.end();
  }
});

describe('benchmark smoke (tiny sizes)', () => {
  it('documents every benchmark there is, and smoke-tests every one documented', () => {
    const scripts = new Set(
      (readFileSync(join(config.repoRoot, 'scripts', 'bench.sh'), 'utf8').match(/\(([a-z, ]+)\)/)?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    );
    assert.deepEqual([...documentedFields().keys()].sort(), Object.keys(TINY).sort());
    assert.deepEqual([...scripts].sort(), Object.keys(TINY).sort(), 'scripts/bench.sh usage lists the same benchmarks');
  });

  for (const [name, variants] of Object.entries(TINY)) {
    for (const args of variants) {
      it(`pnpm bench ${name} ${args.join(' ')}`, async () => {
        const run = await bench(name, args);
        const last = run.stdout.trim().split('\n').pop() ?? '';
        assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr.slice(-3000)}\n${last}`);
        const json = JSON.parse(last) as Record<string, unknown>;
        assert.equal(json.benchmark, name);
        assert.equal(json.error, undefined);
        assert.equal(typeof json.run_s, 'number');
        const variantField = (field: string) => field.startsWith('hybrid.') ? args.includes('--hybrid') : true;
        for (const field of documentedFields().get(name)!.filter(variantField)) {
          const value = valueAt(json, field);
          assert.ok(value !== undefined && value !== null, `${name}: field ${field} missing from ${last}`);
          if (typeof value === 'number') assert.ok(Number.isFinite(value), `${name}: ${field} is ${value}`);
        }
      });
    }
  }

  it('a benchmark stopped with SIGTERM stops the services it started and drops its database', async () => {
    const child = spawn('bash', [join(config.repoRoot, 'scripts', 'bench.sh'), 'ocsp', '--certificates', '2000', '--revoke', '500', '--seconds', '30', '--json', '--hsm-seconds', '1'], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Stopped once its status responder is up and pre-producing: a service of its own to leave behind.
    await waitFor('the benchmark to start its responder', async () => (/pre-produce/.test(stderr) ? true : undefined), 60_000, 100);
    child.kill('SIGTERM');
    assert.equal(await exited, 130, stderr);
    const json = JSON.parse(stdout.trim().split('\n').pop()!) as { error: string; message: string };
    assert.equal(json.error, 'BENCH_INTERRUPTED');
    assert.match(json.message, /stopped by SIGTERM during "/);
    // The benchmark's responder listened on the status port + 100: free again once it is gone.
    const port = config.sites.a.statusPort + 100;
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', (err) => reject(new Error(`port ${port} still taken after the benchmark stopped: ${err.message}`)));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
    await noBenchDatabaseLeft();
  });

  it('a benchmark past its deadline exits non-zero, says where it was, and leaves no database behind', async () => {
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('bash', [join(config.repoRoot, 'scripts', 'bench.sh'), 'ocsp', '--certificates', '200', '--revoke', '50', '--seconds', '30', '--json', '--hsm-seconds', '1', '--deadline', '6'], { env: process.env, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(run.code, 3, run.stderr);
    const json = JSON.parse(run.stdout.trim().split('\n').pop()!) as { error: string; message: string; step: string };
    assert.equal(json.error, 'BENCH_DEADLINE');
    assert.match(json.message, /deadline of 6 s passed during "/);
    assert.ok(json.step.length > 0);
    await noBenchDatabaseLeft();
  });
});
