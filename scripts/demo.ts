/**
 * The README's first command ends here: a tour of what fleetpki does on this machine, with figures.
 * It grows with each capability (ceremony, factory batch, revocation, failover drill).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { entryPoint, loadConfig } from '@fleetpki/core';
import { issueApiToken, postgresCustodyStore, registerSyntheticManufacturer, runCeremony } from '@fleetpki/ca';
import { FleetApiClient, revokeUnderDualControl } from '@fleetpki/client';
import { approvedSwitchoverForDrill, runFailback, runFailoverDrill, runRestoreDrill } from '@fleetpki/drills';
import { generateManifest, syntheticRunPrefix } from '@fleetpki/manifest';
import { hsmSelfTest, openSiteKeyStore, readPin } from '@fleetpki/hsm';
import { backupStatus, consensusStatus, custodianPinFiles, formatStatus, openRootKeyStore, readTopology, sitesStatus, sitesUp } from '@fleetpki/sites';
import { createPool, migrate, readSiteStates } from '@fleetpki/store';
import { generateDeviceKeys, toPem, x509ToC509 } from '@fleetpki/x509';
import { euiGenerator, percentile } from './lib/bench.js';
import { DEMO_METRICS_PORTS, startService, stopProcess, waitForHttp } from '@fleetpki/sites';

function heading(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

const config = loadConfig();

heading('1. Sites: SoftHSM tokens, PostgreSQL primary (A) with synchronous hot standby (B), Redis per site');
let started = Date.now();
await sitesUp(config, (line) => console.log(`  ${line}`));
// An earlier run stopped mid-drill: put site A back in front first (the tour below runs on A).
if (readTopology(config).primary !== 'a') await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config), log: (line) => console.log(`  ${line}`) });
console.log(`  (${Date.now() - started} ms)`);

heading('2. Database schema');
const pool = createPool(config.sites.a.databaseUrl, { max: 1 });
try {
  const result = await migrate(pool, join(config.repoRoot, 'migrations'));
  console.log(`  ${result.alreadyApplied + result.applied.length} migrations in place (${result.applied.length} applied now)`);
} finally {
  await pool.end();
}

heading("3. HSM smoke test on site A's token");
const store = await openSiteKeyStore(config);
try {
  started = Date.now();
  const r = await hsmSelfTest(store, 'self-test', 2_000);
  console.log(`  token ${r.token}: P-256 key "${r.keyLabel}" ${r.keyCreated ? 'generated' : 'present'}; signature verified by node:crypto: ${r.signatureVerified}`);
  console.log(`  private key CKA_SENSITIVE: ${r.privateKeySensitive}; raw signing rate, one session: ${r.signaturesPerSecond} signatures/s`);
  if (!r.signatureVerified || !r.privateKeySensitive) process.exitCode = 1;
} finally {
  await store.close();
}

heading('4. Key ceremony: offline root, device issuing CA, organisation CA (keys generated in the HSM)');
const outDir = join(config.deploymentDir, 'demo');
mkdirSync(outDir, { recursive: true });
const db = createPool(config.sites.a.databaseUrl, { max: 4, applicationName: 'fleetpki-demo' });
try {
  const state = (await readSiteStates(db)).find((s) => s.site === 'a')!;
  // The custodians bring the root's PIN (locally their folder, .fleetpki/custodians/); the root's HSM is its own.
  const rootKeyStore = await openRootKeyStore(config, readPin(`file:${custodianPinFiles(config).rootPin}`));
  const siteKeyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  try {
    const { created, chain } = await runCeremony({ store: postgresCustodyStore(db), rootKeyStore, siteKeyStore, site: 'a', serialPrefix: state.serialPrefix, actor: 'demo' });
    console.log(`  ${created ? 'hierarchy created' : 'hierarchy already present; every CA key matches its certificate'}`);
    for (const ca of chain) console.log(`  ${ca.id.padEnd(5)} ${ca.kind.padEnd(15)} ${ca.subjectDn.padEnd(45)} ${ca.keyUri}`);
    const pem = (id: string) => toPem(chain.find((c) => c.id === id)!.certificate);
    writeFileSync(join(outDir, 'root.pem'), pem('root'));
    writeFileSync(join(outDir, 'issuing.pem'), pem('fpd1'));
  } finally {
    await siteKeyStore.close();
    await rootKeyStore.close();
  }

  heading('5. Online enrolment over HTTP (issuer-api process, factory token, CSRs with proof of possession)');
  // Its block of (synthetic) device ids, as a real factory's OUI: it enrols nothing outside it.
  const demoRange = await registerSyntheticManufacturer(db, { site: 'a', id: 'demo-meters', name: 'Demo Meters Ltd', actor: 'demo' });
  console.log(`  manufacturer demo-meters enrols device ids ${demoRange.first}..${demoRange.last} (its registered EUI-64 range)`);
  const token = await issueApiToken(db, { site: 'a', actor: 'demo', name: 'demo-factory', role: 'factory', manufacturerId: 'demo-meters', expiresDays: 1 });
  const api = startService(config, 'issuer-api', { FLEETPKI_SITE: 'a' });
  try {
    const base = `http://127.0.0.1:${config.sites.a.apiPort}`;
    await waitForHttp(`${base}/readyz`);
    const devices = 2_000;
    const keys = generateDeviceKeys(devices);
    const eui = euiGenerator('demo-meters');
    const latencies: number[] = [];
    const sizes = new Map<string, Buffer>();
    let next = 0;
    let lastPem = '';
    started = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < devices; i = next++) {
          const profile = i % 2 === 0 ? 'smart-meter' : 'smart-meter-compact';
          const t0 = performance.now();
          const res = await fetch(`${base}/v1/enrolments`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ eui64: eui(i), keyRole: 'digitalSignature', profile, csr: keys[i]!.csr.toString('base64') }),
          });
          const body = (await res.json()) as { certificate: string; code?: string; message?: string };
          if (res.status !== 201) throw new Error(`enrolment failed: ${res.status} ${body.code}: ${body.message}`);
          latencies.push(performance.now() - t0);
          sizes.set(profile, Buffer.from(body.certificate.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
          lastPem = body.certificate;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(`  ${devices} certificates in ${seconds.toFixed(2)} s: ${Math.round(devices / seconds)}/s, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms (32 clients)`);
    for (const [profile, der] of sizes) console.log(`  ${profile}: ${der.length} bytes DER, ${x509ToC509(der).length} bytes as C509 (type 3; decodes back to the same DER)`);
    const certPath = join(outDir, 'device.pem');
    writeFileSync(certPath, lastPem);
    const verified = execFileSync('openssl', ['verify', '-CAfile', join(outDir, 'root.pem'), '-untrusted', join(outDir, 'issuing.pem'), certPath], { encoding: 'utf8' }).trim();
    console.log(`  openssl verify: ${verified}`);

    heading('6. Factory batch: 10,000 meters, streamed manifest, queue-driven workers, results bundle');
    // The workers only pull chunk jobs; the batch outbox (chunks lost with Redis or a worker queued again)
    // and the other reconcilers are the site's daemons' jobs, one daemon each.
    const workers = [
      // Each with its metrics listener, where `sites up --prometheus` scrapes it (DEMO_METRICS_PORTS).
      startService(config, 'batch-worker', { FLEETPKI_SITE: 'a', FLEETPKI_METRICS_PORT: String(DEMO_METRICS_PORTS.worker1) }),
      startService(config, 'batch-worker', { FLEETPKI_SITE: 'a', FLEETPKI_METRICS_PORT: String(DEMO_METRICS_PORTS.worker2) }),
      startService(config, 'daemons', { FLEETPKI_SITE: 'a', FLEETPKI_DAEMONS: 'batch-outbox,online-intents,cmp-confirm-expiry,est-superseded', FLEETPKI_METRICS_PORT: String(DEMO_METRICS_PORTS.daemonsBatch) }),
    ];
    try {
      const manifestPath = join(outDir, 'factory-batch.ndjson');
      started = performance.now();
      const generated = await generateManifest({ devices: 10_000, out: manifestPath, roles: ['digitalSignature'], euiPrefix: syntheticRunPrefix('demo-meters') });
      console.log(`  manifest: ${generated.devices} devices with CSRs (EUI-64 prefix ${generated.euiPrefix}), ${(statSync(manifestPath).size / 1e6).toFixed(1)} MB, made in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      const client = new FleetApiClient(base, token);
      started = performance.now();
      const { batch } = await client.submitBatch(manifestPath);
      console.log(`  accepted as batch ${batch.id} in ${((performance.now() - started) / 1000).toFixed(2)} s (${batch.chunks.total} chunks of ${batch.chunks.size})`);
      let shown = 0;
      const done = await client.waitForBatch(batch.id, (b) => {
        if (Date.now() - shown > 2_000) {
          shown = Date.now();
          console.log(`  ... ${b.issued}/${b.certificatesRequested} issued, ${b.certificatesPerSecond}/s`);
        }
      }, 250);
      const resultsPath = join(outDir, 'factory-batch-results.ndjson');
      let certificates = 0;
      const lines: string[] = [];
      for await (const line of client.batchResults(batch.id)) {
        if (line.type === 'certificate') {
          certificates++;
          if (certificates % 2_500 === 1) writeFileSync(join(outDir, `batch-${certificates}.pem`), toPem(Buffer.from(line.certificate, 'base64')));
        }
        lines.push(JSON.stringify(line));
      }
      writeFileSync(resultsPath, lines.join('\n') + '\n');
      const seconds = (performance.now() - started) / 1000;
      console.log(`  ${done.issued} certificates issued, ${done.failed} refused; upload to last download ${seconds.toFixed(1)} s: ${Math.round(done.issued / seconds)} certificates/s`);
      console.log(`  results bundle (chain + one line per certificate): ${resultsPath}`);
      let verifiedSample = 0;
      for (const n of [1, 2_501, 5_001, 7_501]) {
        execFileSync('openssl', ['verify', '-CAfile', join(outDir, 'root.pem'), '-untrusted', join(outDir, 'issuing.pem'), join(outDir, `batch-${n}.pem`)], { encoding: 'utf8' });
        verifiedSample++;
      }
      console.log(`  openssl verify: ${verifiedSample} sampled certificates OK`);

      heading('7. Revocation: 1,000 compromised meters of the batch, OCSP within seconds, sharded CRLs');
      const officerToken = await issueApiToken(db, { site: 'a', actor: 'demo', name: 'demo-officer', role: 'revocation-officer', manufacturerId: null, expiresDays: 1 });
      const officer = new FleetApiClient(base, officerToken);
      const secondOfficer = new FleetApiClient(base, await issueApiToken(db, { site: 'a', actor: 'demo', name: 'demo-second-officer', role: 'revocation-officer', manufacturerId: null, expiresDays: 1 }));
      const status = startService(config, 'status-responder', { FLEETPKI_SITE: 'a' });
      // The site's daemons publish the CRL shards and pre-produce OCSP responses; the responder answers.
      const daemons = startService(config, 'daemons', { FLEETPKI_SITE: 'a', FLEETPKI_DAEMONS: 'crl-publisher,ocsp-preproducer,ocsp-refresher,audit-sealer', FLEETPKI_METRICS_PORT: String(DEMO_METRICS_PORTS.daemonsStatus) });
      try {
        const statusBase = `http://127.0.0.1:${config.sites.a.statusPort}`;
        await waitForHttp(`${statusBase}/healthz`);
        const chainPath = join(outDir, 'chain.pem');
        writeFileSync(chainPath, readFileSync(join(outDir, 'issuing.pem'), 'utf8') + readFileSync(join(outDir, 'root.pem'), 'utf8'));
        const ocsp = (certPath: string) =>
          execFileSync('openssl', ['ocsp', '-issuer', join(outDir, 'issuing.pem'), '-CAfile', join(outDir, 'root.pem'), '-cert', certPath, '-url', `${statusBase}/ocsp`, '-no_nonce'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        const compromised = join(outDir, 'batch-1.pem');
        const untouched = join(outDir, 'batch-2501.pem');
        console.log(`  before: openssl ocsp says ${/: (\w+)/.exec(ocsp(compromised))![1]} for ${compromised}`);
        const devices = lines
          .map((l) => JSON.parse(l) as { type: string; eui64?: string })
          .filter((l) => l.type === 'certificate')
          .slice(0, 1_000)
          .map((l) => l.eui64!);
        started = performance.now();
        const outcome = await revokeUnderDualControl(officer, secondOfficer, { devices }, 'keyCompromise');
        if (outcome.approvalId) console.log(`  dual control: 1,000 devices is above ${config.dualControl.revocationThreshold}; demo-officer requested, demo-second-officer approved, demo-officer executed (approval ${outcome.approvalId})`);
        console.log(`  revocation (1,000 devices, keyCompromise): ${outcome.revoked} revoked in ${outcome.crlShards.length} CRL shards, done in ${(performance.now() - started).toFixed(0)} ms`);
        let answer = '';
        while (!/: revoked/.test((answer = ocsp(compromised)))) await new Promise((r) => setTimeout(r, 100));
        console.log(`  OCSP reports it revoked ${((performance.now() - started) / 1000).toFixed(2)} s after the request: ${answer.split('\n').filter((l) => /revoked|Reason|Response verify/.test(l)).map((l) => l.trim()).join('; ')}`);
        console.log(`  the untouched meter: openssl ocsp says ${/: (\w+)/.exec(ocsp(untouched))![1]}`);
        const dp = /URI:(\S+)/.exec(execFileSync('openssl', ['x509', '-in', compromised, '-noout', '-ext', 'crlDistributionPoints'], { encoding: 'utf8' }))![1]!;
        let crlText = '';
        const crlPath = join(outDir, 'shard.crl');
        for (;;) {
          const res = await fetch(dp);
          if (res.ok) {
            writeFileSync(crlPath, Buffer.from(await res.arrayBuffer()));
            crlText = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', crlPath, '-noout', '-text'], { encoding: 'utf8' });
            if ((crlText.match(/Serial Number:/g) ?? []).length > 0 && crlText.includes(execFileSync('openssl', ['x509', '-in', compromised, '-noout', '-serial'], { encoding: 'utf8' }).trim().split('=')[1]!)) break;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
        console.log(`  its CRL shard ${dp} republished ${((performance.now() - started) / 1000).toFixed(2)} s after the request: ${(crlText.match(/Serial Number:/g) ?? []).length} entries, ${statSync(crlPath).size} bytes`);
        const crlVerify = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', crlPath, '-CAfile', join(outDir, 'issuing.pem'), '-noout', '-verify'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        console.log(`  openssl crl -verify: ${crlVerify.trim() || 'verify OK'}`);
        const crlPem = join(outDir, 'shard.crl.pem');
        execFileSync('openssl', ['crl', '-inform', 'DER', '-in', crlPath, '-out', crlPem]);
        try {
          execFileSync('openssl', ['verify', '-crl_check', '-CAfile', chainPath, '-CRLfile', crlPem, compromised], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          console.log('  openssl verify -crl_check: accepted the revoked certificate (unexpected)');
          process.exitCode = 1;
        } catch (err) {
          console.log(`  openssl verify -crl_check on the revoked meter: ${/certificate revoked/.test(String((err as { stdout?: string }).stdout) + String((err as { stderr?: string }).stderr)) ? 'refused, certificate revoked' : (err as Error).message}`);
        }
      } finally {
        await Promise.all([stopProcess(status), stopProcess(daemons)]);
      }
    } finally {
      await Promise.all(workers.map(stopProcess));
    }
  } finally {
    await stopProcess(api);
  }
} finally {
  await db.end();
}

heading('8. Standby site: CA keys cloned under a 3-of-5 custodian key, then a failover drill mid-batch');
const custodyDir = join(outDir, 'custodians');
// Custody is a custodian's: the CLI takes their token.
const custodianDb = createPool(config.sites.a.databaseUrl, { max: 1 });
const custodianToken = await issueApiToken(custodianDb, { site: 'a', actor: 'demo', name: 'demo-custodian', role: 'custodian', manufacturerId: null, expiresDays: 1 }).finally(() => custodianDb.end());
const fleetpki = (args: string[]) => execFileSync(process.execPath, [...entryPoint(config.repoRoot, 'cli'), ...args], { encoding: 'utf8', env: { ...process.env, FLEETPKI_TOKEN: custodianToken } }).trim();
console.log(`  ${fleetpki(['custody', 'create', '--custodians', '5', '--threshold', '3', '--out', custodyDir])}`);
console.log(`  ${fleetpki(['custody', 'restore', '--site', 'b', '--share', join(custodyDir, 'custodian-1.share'), '--share', join(custodyDir, 'custodian-3.share'), '--share', join(custodyDir, 'custodian-5.share')])}`);
const failedOverAt = Date.now();
const drill = await runFailoverDrill(config, { devices: 10_000, log: (line) => console.log(`  ${line}`) });
console.log(`  RTO ${drill.rto_s} s (last enrolment acknowledged by ${drill.from} to first by ${drill.to}; promotion ${drill.promote_s} s)`);
console.log(`  RPO ${drill.rpo_lost} certificates lost; ${drill.duplicate_serials} duplicates; batch complete: ${drill.batch_complete} (${drill.batch_devices} devices, ${drill.batch_issued_before_kill} issued before the kill, by site ${JSON.stringify(drill.batch_issued_by_site)})`);
console.log(`  enrolments acknowledged ${JSON.stringify(drill.enrolments_acknowledged)}; OCSP from the standby during the drill: ${drill.ocsp_answered} answered, ${drill.ocsp_try_later} tryLater, ${drill.ocsp_failed} failed; CRL numbers ${drill.crl_number_before} -> ${drill.crl_number_after}`);
if (drill.rpo_lost !== 0 || drill.duplicate_serials !== 0 || !drill.batch_complete) process.exitCode = 1;
const back = await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config), failedOverAt, log: (line) => console.log(`  ${line}`) });
console.log(`  failback: site ${back.rebuilt} ${back.how} in ${back.rebuild_s} s, switched back in ${back.switchover_s} s; active site ${back.active}`);

heading('9. Backups: the WAL archive went on across the failover; a restore drill to the moment before it');
const beforeDrill = new Date(failedOverAt - 1_000);
const restore = await runRestoreDrill(config, { target: beforeDrill, log: (line) => console.log(`  ${line}`) });
console.log(`  as of ${restore.target} (from backup ${restore.backup}): ${restore.certificates_restored} certificates, the last ${restore.last_serial ?? 'none'} issued ${restore.last_issued_at ?? '-'}`);
console.log(`  live database by then: ${restore.live_certificates_by_target}; missing from the restore ${restore.missing_from_restore}; removed since ${restore.removed_since_target}`);
console.log(`  restore ${restore.restore_s} s, replay and promotion ${restore.recovery_s} s; audit chain ${restore.verified ? `verifies (${restore.audit.rows} rows, sealed up to ${restore.audit.sealed_up_to ?? '-'})` : `PROBLEMS: ${restore.audit.problems.join('; ')}`}`);
if (!restore.verified) process.exitCode = 1;

heading('10. Status');
console.log(
  formatStatus(await sitesStatus(config), await consensusStatus(config), await backupStatus(config))
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
);
console.log('\nStop everything with `pnpm sites down`; data stays in .fleetpki/ for the next `pnpm sites up`.');
