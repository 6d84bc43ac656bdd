import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOcspRequest, issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { FleetApiClient } from '@fleetpki/client';
import { InternalHttps, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { EnrolmentTraffic } from '@fleetpki/drills';
import { generateManifest, syntheticRunPrefix } from '@fleetpki/manifest';
import { agentLogFile, cutOff, reconnect, waitForActiveSite, waitForRejoin, waitForSyncStandby } from '@fleetpki/sites';
import { batchDevicesNotExactlyOne, countDuplicateIssuance, countMissingCertificates, createPool, pgLinkSecurity, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { OcspAsker, verdictOf, type Verdict } from './ocsp.js';

/**
 * A real partition between two hosts, shared by test/partition.test.ts (the simulation's sources, plain
 * links) and test/two-hosts-installed.test.ts (the installation, TLS and authentication on every link):
 * with both sites' services running and A active, a factory batch and online enrolments run on A, and
 * the link between A and the others is cut. The witness and B (a majority in etcd) elect B; A's
 * processes, cut off from the majority, stop issuing and stop saying "good" before B acts; B promotes
 * (its writes then wait for a synchronous standby, none being reachable). When the link is back, A's
 * agent rewinds A into B's standby with pg_rewind, B's writes flow, and B's workers finish the batch: no
 * duplicate serial, nothing acknowledged lost. Every client goes through the configured URLs (https
 * checked against tls.caBundle when the parts serve it) and every database link through pgLinkSecurity.
 */
export interface PartitionRun {
  /** Where A's processes stopped and B took over, after the cut (ms), for the log line. */
  readonly aStoppedAfterMs: number;
  readonly bActiveAfterMs: number;
}

/** One OCSP request for `serial` to a site's status responder, by the deployment's internal client. */
async function askOcsp(https: InternalHttps, asker: OcspAsker, site: SiteConfig, serial: Buffer): Promise<Verdict> {
  const certId = asker.certId(serial);
  const answer = await https.request('status', `${site.statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: buildOcspRequest(certId), timeoutMs: 2_000 });
  return answer.status === 200 ? verdictOf(answer.body, certId) : 'other';
}

async function readyStatus(https: InternalHttps, site: SiteConfig): Promise<number> {
  return (await https.request('api', `${site.apiUrl}/readyz`, { timeoutMs: 2_000 })).status;
}

/** The scenario, with `pool` the owner's connection to site A (the active site when it starts). */
export async function partitionMidBatch(config: FleetConfig, pool: Pool, manufacturerId = 'ns-meters'): Promise<PartitionRun> {
  const [a, b] = [config.sites.a, config.sites.b];
  const https = new InternalHttps(config);
  await registerSyntheticManufacturer(pool, { site: 'a', id: manufacturerId, name: `Partition Meters (${manufacturerId})`, actor: 'test' });
  const token = await issueApiToken(pool, { site: 'a', actor: 'test', name: `partition-factory-${manufacturerId}`, role: 'factory', manufacturerId, expiresDays: 1 });
  const folder = mkdtempSync(join(tmpdir(), 'fleetpki-partition-'));
  const traffic = new EnrolmentTraffic([a, b], token, generateDeviceKeys(3000).map((k) => k.csr), syntheticRunPrefix(manufacturerId), 20, https);
  try {
    const manifest = join(folder, 'batch.ndjson');
    // Big enough to be still issuing when the link is cut: 3,000 devices were all issued before the
    // traffic below had 20 enrolments acknowledged, once the workers did ~3,500 certificates/s.
    await generateManifest({ devices: 20_000, out: manifest, euiPrefix: syntheticRunPrefix(manufacturerId) });
    const factoryA = FleetApiClient.forSite(config, 'a', token);
    const { batch } = await factoryA.submitBatch(manifest);
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
        const ready = await readyStatus(https, a).catch(() => 0);
        const verdict = await askOcsp(https, asker, a, probe).catch((): Verdict => 'other');
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

    const factoryB = FleetApiClient.forSite(config, 'b', token);
    const done = await factoryB.waitForBatch(batch.id, undefined, 250);
    while (!traffic.acknowledged.some((x) => x.site === 'b')) await new Promise((r) => setTimeout(r, 50));
    await traffic.stop();
    assert.equal(done.status, 'complete');
    assert.equal(done.issued, done.certificatesRequested);
    const dbB = createPool(b.databaseUrl, { max: 1, security: pgLinkSecurity(config, 'owner') });
    try {
      assert.equal(await countDuplicateIssuance(dbB), 0, 'no duplicate serials');
      assert.equal(await batchDevicesNotExactlyOne(dbB, batch.id), 0, 'every device of the batch has exactly one certificate');
      assert.equal(await countMissingCertificates(dbB, traffic.acknowledged.map((x) => x.serial)), 0, 'nothing acknowledged is missing');
    } finally {
      await dbB.end();
    }
    return { aStoppedAfterMs: aStoppedAt - cutAt, bActiveAfterMs: bActiveAt - cutAt };
  } finally {
    await traffic.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}

/** The sites' agents' last lines, for a failure's message (the deployment is removed afterwards). */
export function agentLogTails(config: FleetConfig): string {
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
