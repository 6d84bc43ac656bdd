import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { FleetApiClient } from '@fleetpki/client';
import { findRepoRoot, loadConfig, type FleetConfig } from '@fleetpki/core';
import { EnrolmentTraffic } from '@fleetpki/drills';
import { generateManifest, syntheticRunPrefix } from '@fleetpki/manifest';
import { agentLogFile, cutOff, netnsAvailable, reconnect, removeNetns, sitesDown, sitesUp, startService, stopProcess, waitForActiveSite, waitForHttp, waitForRejoin, waitForSyncStandby } from '@fleetpki/sites';
import { batchDevicesNotExactlyOne, countDuplicateIssuance, countMissingCertificates, createPool, migrate, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { ensureCa } from './support/ca.js';
import { cli } from './support/cli.js';
import { OcspAsker, statusUrl, type Verdict } from './support/ocsp.js';

/**
 * A real partition between two hosts. Site A, site B and the witness run in network namespaces of their
 * own (FLEETPKI_NETNS=on: a deployment of this test's own, under .two-hosts/), joined by veth links;
 * the link between A and the others is cut while a factory batch and online enrolments run on A. The
 * witness and B (a majority in etcd) elect B; A's processes, cut off from the majority, stop issuing and
 * stop saying "good" before B acts; B promotes (its writes then wait for a synchronous standby, none
 * being reachable). When the link is back, A's agent rewinds A into B's standby with pg_rewind, B's
 * writes flow, and B's workers finish the batch: no duplicate serial, nothing acknowledged lost.
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
let traffic: EnrolmentTraffic | undefined;

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
  await traffic?.stop();
  await Promise.all(children.map(stopProcess));
  await pool?.end();
  await teardown();
});

/** The agents' last lines, for a failure's message (the deployment is removed afterwards). */
function agentLogs(): string {
  return (['a', 'b'] as const)
    .map((id) => {
      try {
        return `--- site ${id} agent ---\n${readFileSync(agentLogFile(config.sites[id]), 'utf8').split('\n').slice(-25).join('\n')}`;
      } catch {
        return `--- site ${id} agent: no log ---`;
      }
    })
    .join('\n');
}

describe('a partition between two hosts (network namespaces)', { skip: available ? false : 'needs root and ip netns (the sites run on loopback here)' }, () => {
  it('cut A off mid-batch: A stops before B promotes; after the link is back A is rewound into the standby; the batch completes, nothing duplicated or lost', async () => {
    try {
      await partitionMidBatch();
    } catch (err) {
      (err as Error).message += `\n${agentLogs()}`;
      throw err;
    }
  });
});

async function partitionMidBatch(): Promise<void> {
  {
    const [a, b] = [config.sites.a, config.sites.b];
    await registerSyntheticManufacturer(pool, { site: 'a', id: 'ns-meters', name: 'Namespace Meters', actor: 'test' });
    const token = await issueApiToken(pool, { site: 'a', actor: 'test', name: 'partition-factory', role: 'factory', manufacturerId: 'ns-meters', expiresDays: 1 });
    for (const site of ['a', 'b'] as const) {
      start('issuer-api', site);
      start('batch-worker', site);
      start('status-responder', site);
      start('daemons', site);
    }
    await waitForHttp(`http://${a.host}:${a.apiPort}/readyz`, 60_000);
    for (const site of [a, b]) await waitForHttp(`http://${site.host}:${site.statusPort}/healthz`, 60_000);

    const manifest = join(mkdtempSync(join(tmpdir(), 'fleetpki-partition-')), 'batch.ndjson');
    // Big enough to be still issuing when the link is cut: 3,000 devices were all issued before the
    // traffic below had 20 enrolments acknowledged, once the workers did ~3,500 certificates/s.
    await generateManifest({ devices: 20_000, out: manifest, euiPrefix: syntheticRunPrefix('ns-meters') });
    const factoryA = new FleetApiClient(`http://${a.host}:${a.apiPort}`, token);
    const { batch } = await factoryA.submitBatch(manifest);
    traffic = new EnrolmentTraffic([a, b], token, generateDeviceKeys(3000).map((k) => k.csr), syntheticRunPrefix('ns-meters'), 20);
    traffic.start(2);
    while (traffic.acknowledged.length < 20) await new Promise((r) => setTimeout(r, 50));
    const asker = await OcspAsker.forIssuingCa(pool);
    const probe = Buffer.from(traffic.acknowledged[0]!.serial, 'hex');
    let view = await factoryA.getBatch(batch.id);
    while (view.issued < view.certificatesRequested * 0.3 && view.status !== 'complete') {
      await new Promise((r) => setTimeout(r, 100));
      view = await factoryA.getBatch(batch.id);
    }
    assert.notEqual(view.status, 'complete', 'the batch is still running when the link is cut');

    // Cut. Watch A from this machine (its link here stays) while B and the witness elect B.
    cutOff(config.simulation, 'a');
    const cutAt = Date.now();
    let aStoppedAt: number | undefined;
    const watchA = (async () => {
      while (aStoppedAt === undefined && Date.now() - cutAt < 60_000) {
        const ready = await fetch(`http://${a.host}:${a.apiPort}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status).catch(() => 0);
        const verdict: Verdict = await asker.ask(statusUrl(config, 'a', 0), probe).catch((): Verdict => 'other');
        if (ready !== 200 && verdict !== 'good') aStoppedAt = Date.now();
        else await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await waitForActiveSite(config, b, 60_000);
    const bActiveAt = Date.now();
    await watchA;
    assert.ok(aStoppedAt !== undefined, 'site A stopped issuing and vouching within 60 s of the cut');
    assert.ok(aStoppedAt <= bActiveAt, `A stopped ${aStoppedAt - cutAt} ms after the cut, B was active ${bActiveAt - cutAt} ms after it`);
    console.log(`# partition: A stopped issuing and vouching ${((aStoppedAt - cutAt) / 1000).toFixed(1)} s after the cut; B active ${((bActiveAt - cutAt) / 1000).toFixed(1)} s after it`);
    const lastOnA = Math.max(...traffic.acknowledged.filter((x) => x.site === 'a').map((x) => x.at));
    assert.ok(lastOnA <= aStoppedAt, 'nothing acknowledged by A after it stopped');

    // The link is back: A's agent sees B lead and rewinds A into its standby; B's writes flow again.
    reconnect(config.simulation, 'a');
    const healedAt = Date.now();
    await waitForSyncStandby(config, b, a, 180_000);
    const rejoin = await waitForRejoin(config, a, cutAt);
    assert.equal(rejoin.how, 'rewound', `A rejoined by ${rejoin.how}${rejoin.why ? `: ${rejoin.why}` : ''}`);
    console.log(`# partition healed: A rewound into B's standby in ${rejoin.seconds} s (${((Date.now() - healedAt) / 1000).toFixed(1)} s after the link came back)`);

    const factoryB = new FleetApiClient(`http://${b.host}:${b.apiPort}`, token);
    const done = await factoryB.waitForBatch(batch.id, undefined, 250);
    while (!traffic.acknowledged.some((x) => x.site === 'b')) await new Promise((r) => setTimeout(r, 50));
    await traffic.stop();
    assert.equal(done.status, 'complete');
    assert.equal(done.issued, done.certificatesRequested);
    const dbB = createPool(b.databaseUrl, { max: 1 });
    try {
      assert.equal(await countDuplicateIssuance(dbB), 0, 'no duplicate serials');
      assert.equal(await batchDevicesNotExactlyOne(dbB, batch.id), 0, 'every device of the batch has exactly one certificate');
      assert.equal(await countMissingCertificates(dbB, traffic.acknowledged.map((x) => x.serial)), 0, 'nothing acknowledged is missing');
    } finally {
      await dbB.end();
    }
  }
}
