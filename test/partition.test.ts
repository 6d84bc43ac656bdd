import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { issueApiToken } from '@fleetpki/ca';
import { findRepoRoot, loadConfig, type FleetConfig } from '@fleetpki/core';
import { netnsAvailable, removeNetns, sitesDown, sitesUp, startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { createPool, migrate, type Pool } from '@fleetpki/store';
import { ensureCa } from './support/ca.js';
import { cli } from './support/cli.js';
import { agentLogTails, partitionMidBatch as runScenario } from './support/partition-scenario.js';

/**
 * A real partition between two hosts. Site A, site B and the witness run in network namespaces of their
 * own (FLEETPKI_NETNS=on: a deployment of this test's own, under .two-hosts/), joined by veth links;
 * the scenario (test/support/partition-scenario.ts, shared with the installed layout's test) cuts the
 * link between A and the others while a factory batch and online enrolments run on A.
 */
const repoRoot = findRepoRoot();
const stateDir = join(repoRoot, '.two-hosts');
// Its own deployment, files included: the test runner's throw-away database, tokens and folder are for the loopback sites.
const nsEnv = { FLEETPKI_NETNS: 'on', FLEETPKI_STATE_DIR: stateDir, FLEETPKI_DEPLOYMENT_DIR: stateDir, FLEETPKI_PG_DATABASE: 'fleetpki', FLEETPKI_HSM_TOKEN_PREFIX: 'fleetpki', FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'warn' };
// This file's process belongs to that deployment (node --test runs each file in its own process): the
// agents, services and CLI it starts inherit the settings.
Object.assign(process.env, nsEnv);
const available = netnsAvailable();
let config: FleetConfig;
let pool: Pool;
const children: ChildProcess[] = [];

async function teardown(): Promise<void> {
  const c = loadConfig({ ...process.env, ...nsEnv });
  await sitesDown(c).catch(() => undefined);
  removeNetns(c.simulation);
  rmSync(stateDir, { recursive: true, force: true });
}

function start(name: string, site: 'a' | 'b', extra: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = startService(config, name, { ...nsEnv, FLEETPKI_SITE: site, ...extra });
  children.push(child);
  return child;
}

before(async () => {
  if (!available) return;
  await teardown();
  config = loadConfig({ ...process.env, ...nsEnv });
  await sitesUp(config);
  pool = createPool(config.sites.a.databaseUrl, { max: 2 });
  await migrate(pool, join(repoRoot, 'migrations'));
  await ensureCa(config, pool);
  // Site B's token gets its clone of the CA keys, as the custodians would do it.
  const custodian = await issueApiToken(pool, { site: 'a', actor: 'test', name: 'partition-custodian', role: 'custodian', manufacturerId: null, expiresDays: 1 });
  const shares = mkdtempSync(join(tmpdir(), 'fleetpki-custody-'));
  const env = { ...nsEnv, FLEETPKI_TOKEN: custodian };
  const created = await cli(['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', shares], env);
  assert.equal(created.code, 0, created.stderr);
  const restored = await cli(['custody', 'restore', '--site', 'b', ...[1, 2].flatMap((n) => ['--share', join(shares, `custodian-${n}.share`)])], env);
  assert.equal(restored.code, 0, restored.stderr);
});

after(async () => {
  if (!available) return;
  await Promise.all(children.map(stopProcess));
  await pool?.end();
  await teardown();
});


describe('a partition between two hosts (network namespaces)', { skip: available ? false : 'needs root and ip netns (the sites run on loopback here)' }, () => {
  it('cut A off mid-batch: A stops before B promotes; after the link is back A is rewound into the standby; the batch completes, nothing duplicated or lost', async () => {
    try {
      await partitionMidBatch();
    } catch (err) {
      (err as Error).message += `\n${agentLogTails(config)}`;
      throw err;
    }
  });
});

async function partitionMidBatch(): Promise<void> {
  const [a, b] = [config.sites.a, config.sites.b];
  for (const site of ['a', 'b'] as const) {
    start('issuer-api', site);
    start('batch-worker', site);
    start('status-responder', site);
    start('daemons', site);
  }
  await waitForHttp(`http://${a.host}:${a.apiPort}/readyz`, 60_000);
  for (const site of [a, b]) await waitForHttp(`http://${site.host}:${site.statusPort}/healthz`, 60_000);
  await runScenario(config, pool);
}
