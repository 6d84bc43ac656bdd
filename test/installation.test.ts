import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { freePort } from '../scripts/lib/free-port.js';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { INSTALLATION_MARKER, type FleetConfig } from '@fleetpki/core';
import { stopProcess } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * The production installation (scripts/package.sh: every program's build with its production
 * dependencies only) starts every program without anything a developer has: no tsx, no TypeScript, no
 * source, no devDependency, no repository on the module path. scripts/test-compiled.sh makes the
 * installation and names it in FLEETPKI_INSTALLATION_DIR; without it these tests are skipped.
 */
const install = process.env.FLEETPKI_INSTALLATION_DIR;
const skip = install ? false : 'needs an installation: FLEETPKI_INSTALLATION_DIR (scripts/test-compiled.sh makes one)';
const SERVICES = ['issuer-api', 'status-responder', 'batch-worker', 'daemons'];

let config: FleetConfig;
let pool: Pool;

before(async () => {
  if (!install) return;
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
});

after(async () => {
  await pool?.end();
});

/** What a service host has: the test deployment's settings, the system's PATH, nothing of node's or the repository's. */
function hostEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const fleetpki = Object.entries(process.env).filter(([k]) => k.startsWith('FLEETPKI_') && k !== 'FLEETPKI_RUNTIME' && k !== 'FLEETPKI_INSTALLATION_DIR');
  // The sites' clusters and tokens are the repository's (an installation's own state folder would be empty).
  return { ...Object.fromEntries(fleetpki), PATH: '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/root', FLEETPKI_STATE_DIR: config.stateDir, FLEETPKI_LOG_LEVEL: 'warn', ...extra };
}

/** Every package folder of an installation's programs: node_modules/.pnpm/<name@version>/node_modules/<name>. */
function installedPackages(): { name: string; dir: string }[] {
  const found: { name: string; dir: string }[] = [];
  for (const service of readdirSync(join(install!, 'services'))) {
    const store = join(install!, 'services', service, 'node_modules', '.pnpm');
    for (const entry of existsSync(store) ? readdirSync(store) : []) {
      const modules = join(store, entry, 'node_modules');
      if (!existsSync(modules)) continue;
      for (const scopeOrName of readdirSync(modules)) {
        const names = scopeOrName.startsWith('@') ? readdirSync(join(modules, scopeOrName)).map((n) => `${scopeOrName}/${n}`) : [scopeOrName];
        for (const name of names) found.push({ name, dir: join(modules, name) });
      }
    }
  }
  return found;
}

/** Every devDependency of the repository (the root's and each workspace package's). */
function devDependencies(): Set<string> {
  const names = new Set<string>();
  const manifests = [join(config.repoRoot, 'package.json'), ...['packages', 'services'].flatMap((d) => readdirSync(join(config.repoRoot, d)).map((p) => join(config.repoRoot, d, p, 'package.json')))];
  for (const file of manifests.filter(existsSync)) for (const name of Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { devDependencies?: Record<string, string> }).devDependencies ?? {})) names.add(name);
  return names;
}

describe('the production installation', { skip }, () => {
  it('is marked as an installation and holds the build of every program', () => {
    assert.ok(existsSync(join(install!, INSTALLATION_MARKER)));
    for (const program of [...SERVICES, 'site-agent', 'cli']) assert.ok(existsSync(join(install!, 'services', program, 'dist', 'main.js')), program);
    assert.ok(readdirSync(join(install!, 'migrations')).some((f) => f.endsWith('.sql')));
  });

  it('holds no devDependency: no tsx, esbuild, typescript or eslint', () => {
    const dev = devDependencies();
    assert.ok(dev.has('tsx') && dev.has('typescript') && dev.has('eslint'), 'the repository declares them');
    const present = new Set(installedPackages().map((p) => p.name));
    assert.ok(present.has('fastify') && present.has('@fleetpki/core'), 'production dependencies are there');
    // Type declarations are exempt: a production dependency may declare one (protobufjs, under etcd3,
    // needs @types/node), and they hold no code. Everything else a developer uses must be absent.
    const forbidden = [...dev, 'esbuild'].filter((name) => !name.startsWith('@types/') && present.has(name));
    assert.deepEqual(forbidden, []);
  });

  it('holds no TypeScript source of ours, only the build', () => {
    const ours = installedPackages().filter((p) => p.name.startsWith('@fleetpki/'));
    assert.ok(ours.length > 0);
    for (const { name, dir } of ours) assert.ok(!existsSync(join(dir, 'src')) && existsSync(join(dir, 'dist')), `${name} in ${dir}`);
    for (const program of readdirSync(join(install!, 'services'))) assert.ok(!existsSync(join(install!, 'services', program, 'src')), program);
  });

  it('the CLI answers --help, run from the installation folder with a bare PATH', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [join(install!, 'services', 'cli', 'dist', 'main.js'), '--help'], { cwd: install, env: hostEnv(), timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
    );
    assert.equal(code, 0, stderr);
    assert.match(stdout, /Usage: fleetpki/);
    assert.match(stdout, /ceremony/);
  });

  it('the site agent loads all its modules (stopped by a bad setting, not by a missing module)', async () => {
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [join(install!, 'services', 'site-agent', 'dist', 'main.js')], { cwd: install, env: hostEnv({ FLEETPKI_SITE: 'elsewhere' }), timeout: 60_000 }, (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })),
    );
    assert.equal(code, 1);
    assert.match(stderr, /site-agent: CONFIG_INVALID: .*FLEETPKI_SITE/);
    assert.doesNotMatch(stderr, /ERR_MODULE_NOT_FOUND|Cannot find/);
  });

  for (const service of SERVICES) {
    it(`${service} reaches ready from the installation`, async () => {
      const env = hostEnv({ FLEETPKI_SITE: 'a', FLEETPKI_API_PORT_A: String(await freePort()), FLEETPKI_STATUS_PORT_A: String(await freePort()) });
      const child = spawn(process.execPath, [join(install!, 'services', service, 'dist', 'main.js')], { cwd: install, env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        const outcome = await new Promise<string>((resolve) => {
          child.on('message', (m: { fleetpkiReady?: string }) => m.fleetpkiReady && resolve(`ready: ${m.fleetpkiReady}`));
          child.once('exit', (code, signal) => resolve(`exited (${signal ?? code})`));
          setTimeout(() => resolve('not ready within 120 s'), 120_000).unref();
        });
        assert.equal(outcome, `ready: ${service}`, stderr);
      } finally {
        await stopProcess(child);
      }
    });
  }
});
