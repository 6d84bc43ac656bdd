import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { agentPid, deploymentFile, stopProcess, waitForHttp } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * `sites up` writes the local topology as a configuration file, the processes it starts read it, and a
 * service given nothing but that file (no FLEETPKI_* variable for its topology) finds every part; a file
 * with a wrong value stops a service at start with CONFIG_INVALID naming the key.
 */
let config: FleetConfig;
let file: string;
let pool: Pool;
const scratch = mkdtempSync(join(tmpdir(), 'fleetpki-config-file-'));

// Generous waits: on a loaded machine a tsx service took minutes to start (CPU, not this code); the test
// asserts what the service does, not how fast.

/** The environment without any FLEETPKI_* variable: what the file alone says. */
function fileOnlyEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLEETPKI_'))), FLEETPKI_LOG_LEVEL: 'warn', ...extra };
}

function run(script: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--conditions=fleetpki-source', '--import', 'tsx', ...script], { env, timeout: 600_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  config = await ensureSites();
  file = deploymentFile(config);
  // The status responder serves a CA's status: the deployment's CA, made once.
  pool = siteAPool(config);
  await ensureCa(config, pool);
});

after(async () => {
  await pool?.end();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the configuration file of the local sites', () => {
  it('is written by `sites up` and describes the same topology the variables do', () => {
    assert.ok(existsSync(file), `${file} written`);
    const fromFile = loadConfig(fileOnlyEnv({ FLEETPKI_CONFIG: file }));
    for (const id of ['a', 'b'] as const) {
      const [want, got] = [config.sites[id], fromFile.sites[id]];
      assert.deepEqual([got.pgPort, got.redisPort, got.apiPort, got.statusPort], [want.pgPort, want.redisPort, want.apiPort, want.statusPort]);
      assert.equal(got.databaseUrl, want.databaseUrl);
      assert.equal(got.redisUrl, want.redisUrl);
      assert.equal(got.hsmTokenLabel, want.hsmTokenLabel);
      assert.equal(got.hsmPinFile, want.hsmPinFile);
      assert.equal(got.hsm.modulePath, want.hsm.modulePath);
    }
    assert.deepEqual(fromFile.consensus.endpoints, config.consensus.endpoints);
    assert.equal(fromFile.deploymentDir, config.deploymentDir);
    assert.equal(fromFile.pgDatabase, config.pgDatabase);
  });

  it('is what the site agents were started with', () => {
    for (const id of ['a', 'b'] as const) {
      const pid = agentPid(config.sites[id]);
      assert.ok(pid, `site ${id}'s agent runs`);
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      const named = environ.find((v) => v.startsWith('FLEETPKI_CONFIG='))?.slice('FLEETPKI_CONFIG='.length);
      assert.ok(named && existsSync(named), `agent ${id} reads a configuration file (${named})`);
      assert.deepEqual(loadConfig(fileOnlyEnv({ FLEETPKI_CONFIG: named })).consensus.endpoints, config.consensus.endpoints);
    }
  });

  it('is all a service needs: the status responder starts from the file alone (one variable moving its port)', async () => {
    const port = config.sites.a.statusPort + 300;
    const child = spawn(process.execPath, ['--conditions=fleetpki-source', '--import', 'tsx', join(config.repoRoot, 'services', 'status-responder', 'src', 'main.ts')], {
      env: fileOnlyEnv({ FLEETPKI_CONFIG: file, FLEETPKI_SITE: 'a', FLEETPKI_STATUS_PORT_A: String(port) }),
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the status responder exited (${code}) before it answered`))));
    exited.catch(() => undefined); // stopped by us at the end: not a failure
    try {
      await Promise.race([waitForHttp(`http://${config.sites.a.statusHost}:${port}/healthz`, 600_000), exited]);
    } finally {
      await stopProcess(child);
    }
  });

  it('stops a service given a wrong value at start, naming the key; `config check` says the same', async () => {
    const text = readFileSync(file, 'utf8');
    const needle = `port: ${config.sites.b.pgPort}\n`;
    assert.equal(text.split(needle).length, 2, `${file} names site b's PostgreSQL port once`);
    const bad = join(scratch, 'bad.yaml');
    writeFileSync(bad, text.replace(needle, 'port: abc\n'));
    const service = await run([join(config.repoRoot, 'services', 'status-responder', 'src', 'main.ts')], fileOnlyEnv({ FLEETPKI_CONFIG: bad, FLEETPKI_SITE: 'a' }));
    assert.equal(service.code, 1, service.stderr);
    assert.match(service.stderr, /CONFIG_INVALID/);
    assert.ok(service.stderr.includes(`invalid configuration in ${bad}: sites.b.postgres.port: expected a port 1-65535, got "abc"`), service.stderr);
    const cli = [join(config.repoRoot, 'services', 'cli', 'src', 'main.ts'), 'config', 'check', '--file'];
    const check = await run([...cli, bad], fileOnlyEnv({}));
    assert.equal(check.code, 1, check.stderr);
    assert.ok(check.stderr.includes('sites.b.postgres.port: expected a port 1-65535, got "abc"'), check.stderr);
    const good = await run([...cli, file], fileOnlyEnv({}));
    assert.equal(good.code, 0, good.stderr);
    assert.ok(good.stdout.includes(`configuration file: ${file}`) && good.stdout.includes(`pgPort: ${config.sites.b.pgPort}`), good.stdout);
  });
});
