/**
 * pnpm bench batch --devices N [--workers W] [--public-keys] [--hybrid] [--json] [--deadline S]
 * End to end, as a factory sees it: upload the manifest (streamed) to an issuer-api process, W batch
 * worker processes issue it, and every certificate is downloaded while they do. Prints devices/s, certificates/s, the
 * raw HSM signing rate measured in the same run and the ratio, the CPU time per certificate of every
 * process (API, workers, both PostgreSQL clusters, Redis; scripts/lib/cpu-meter.ts), each process's
 * peak RSS, and the database size. The manifest is generated first (not timed). --hybrid then downloads the
 * batch's symmetric device keys (mac + enc per device, diversified and wrapped in the HSM) and prints
 * keys/s and the end-to-end rate with them.
 */
import { mkdirSync, statSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeviceKeyService, issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { FleetApiClient } from '@fleetpki/client';
import { loadConfig } from '@fleetpki/core';
import { generateManifest, signManifestFile, syntheticRunPrefix } from '@fleetpki/manifest';
import { createPool, listMasterKeys, setManufacturerManifestKey, setManufacturerTransportKey } from '@fleetpki/store';
import { startService, stopProcess } from '@fleetpki/sites';
import { benchOptions, measureRawHsmRate, peakRssMb } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { CpuMeter, cpuPerCertificate } from './lib/cpu-meter.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    workers: { type: 'string', default: '2' },
    'public-keys': { type: 'boolean', default: false },
    hybrid: { type: 'boolean', default: false },
    // Generous by default: a million devices took 22 minutes before issue 18's work.
    ...benchOptions(600 + Math.ceil(Number(process.argv[process.argv.indexOf('--devices') + 1] ?? 100_000) / 100)),
  },
});
const devices = Number(args.devices);
const workerCount = Number(args.workers);
const keyForm = args['public-keys'] ? 'publicKey' : 'csr';
const run = new BenchRun('batch', { deadlineSeconds: Number(args.deadline), json: args.json });
const log = (line: string) => run.log(line);

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  const site = config.sites.a;
  const dir = join(config.deploymentDir, 'bench');
  mkdirSync(dir, { recursive: true });

  run.begin(`raw HSM signing rate (one signing thread per core, ${args['hsm-seconds']} s)`);
  const rawRate = await measureRawHsmRate(config, { seconds: Number(args['hsm-seconds']) });
  log(`  ${Math.round(rawRate)} signatures/s`);

  const manifestPath = join(dir, `manifest-${devices}-${keyForm}.ndjson`);
  run.begin(`generating a manifest of ${devices} devices (${keyForm})`);
  let t = performance.now();
  await generateManifest({ devices, out: manifestPath, keyForm, euiPrefix: syntheticRunPrefix('bench') });
  log(`  ${statSync(manifestPath).size} bytes in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const db = createPool(site.databaseUrl, { max: 2 });
  run.onCleanup(() => db.end());
  await registerSyntheticManufacturer(db, { site: 'a', id: 'bench', name: 'Benchmark Meters', actor: 'bench' });
  const token = await issueApiToken(db, { site: 'a', actor: 'bench', name: 'bench-batch', role: 'factory', manufacturerId: 'bench', expiresDays: 1 });
  let signature: string | undefined;
  if (keyForm === 'publicKey') {
    const factory = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await setManufacturerManifestKey(db, 'bench', factory.publicKey.export({ format: 'der', type: 'spki' }));
    signature = await signManifestFile(manifestPath, factory.privateKey);
  }

  // The benchmark's own HSM session, for creating master keys when --hybrid needs them.
  const hybridStore = args.hybrid ? await openSiteKeyStore(config, site, { sessions: 1 }) : undefined;
  if (hybridStore) run.onCleanup(() => hybridStore.close());
  const api = run.track(startService(config, 'issuer-api', { FLEETPKI_SITE: 'a' }), 'issuer-api');
  const workers = Array.from({ length: workerCount }, (_, i) => run.track(startService(config, 'batch-worker', { FLEETPKI_SITE: 'a' }), `batch-worker ${i + 1}`));
  // The batch outbox runs in the site's daemons (the workers only pull chunk jobs), as in production.
  const outbox = run.track(startService(config, 'daemons', { FLEETPKI_SITE: 'a', FLEETPKI_DAEMONS: 'batch-outbox', FLEETPKI_METRICS_PORT: '0' }), 'daemons');
  run.onCleanup(async () => {
    for (const child of [api, ...workers, outbox]) run.untrack(child);
    await Promise.all([api, ...workers, outbox].map(stopProcess));
  });
  await run.waitForHttp(`http://127.0.0.1:${site.apiPort}/readyz`, 'the issuer API to start');
  const client = new FleetApiClient(`http://127.0.0.1:${site.apiPort}`, token);
  run.begin(`submitting (upload, then ${workerCount} workers issue)`);
  const meter = new CpuMeter(() => ({
    'issuer-api': [{ pid: api.pid!, withChildren: false }],
    ...Object.fromEntries(workers.map((w, i) => [`batch-worker ${i + 1}`, [{ pid: w.pid!, withChildren: false }]])),
    ...CpuMeter.siteProcesses(site, 'primary'),
    ...CpuMeter.siteProcesses(config.sites.b, 'standby'),
  }));
  meter.begin();
  t = performance.now();
  const { batch } = await client.submitBatch(manifestPath, signature ? { signature } : {});
  const uploaded = (performance.now() - t) / 1000;
  log(`  accepted in ${uploaded.toFixed(1)} s: ${batch.certificatesRequested} certificates in ${batch.chunks.total} chunks`);
  // The download follows the issuance (as `batch submit --wait -o` does), so it ends soon after the last chunk.
  let downloaded = 0;
  const download = (async () => {
    for await (const line of client.followBatchResults(batch.id, { intervalMs: 500 })) if (line.type === 'certificate') downloaded++;
  })();
  let done = batch;
  await run.waitUntil(`${workerCount} workers to issue batch ${batch.id}`, async () => {
    done = await client.getBatch(batch.id);
    return { done: ['complete', 'failed', 'cancelled'].includes(done.status), progress: `${done.issued}/${done.certificatesRequested} issued (${done.status}), ${done.certificatesPerSecond}/s` };
  });
  if (done.status !== 'complete') run.fail('BENCH_BATCH_FAILED', `batch ${batch.id} ended ${done.status}: ${done.issued} issued, ${done.failed} failed`);
  const issuedAt = (performance.now() - t) / 1000;
  run.begin(`downloading the last of ${done.issued} certificates (${downloaded} so far)`);
  await download;
  const elapsed = (performance.now() - t) / 1000;
  const cpu = cpuPerCertificate(meter.end(), done.issued);
  if (downloaded !== done.issued || done.issued !== batch.certificatesRequested) run.fail('BENCH_BATCH_INCOMPLETE', `expected ${batch.certificatesRequested} certificates, issued ${done.issued}, downloaded ${downloaded}`);

  let hybrid: { keys: number; keys_s: number; keys_per_s: number; devices_per_s_with_keys: number; ratio_to_raw_hsm_with_keys: number } | undefined;
  if (args.hybrid) {
    run.begin('downloading the batch\'s device keys (mac + enc)');
    const service = new DeviceKeyService(db, hybridStore!, 'a');
    const active = new Set((await listMasterKeys(db)).filter((m) => m.status === 'active').map((m) => m.role));
    for (const role of ['mac', 'enc'] as const) if (!active.has(role)) await service.createMasterKey(role, 'bench');
    const factoryKa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await setManufacturerTransportKey(db, 'bench', factoryKa.publicKey.export({ format: 'der', type: 'spki' }));
    const k0 = performance.now();
    let keys = 0;
    for await (const line of client.batchDeviceKeys(batch.id)) if (line.type === 'device-key') keys++;
    const keysSeconds = (performance.now() - k0) / 1000;
    const total = (performance.now() - t) / 1000;
    hybrid = { keys, keys_s: Number(keysSeconds.toFixed(2)), keys_per_s: Math.round(keys / keysSeconds), devices_per_s_with_keys: Math.round(devices / total), ratio_to_raw_hsm_with_keys: Number((done.issued / total / rawRate).toFixed(3)) };
    log(`  device keys: ${keys} (mac + enc) downloaded in ${hybrid.keys_s} s, ${hybrid.keys_per_s} keys/s; end to end with keys ${hybrid.devices_per_s_with_keys} devices/s, ratio ${hybrid.ratio_to_raw_hsm_with_keys}`);
  }
  const rss = { api: peakRssMb(api.pid!), workers: workers.map((w) => peakRssMb(w.pid!)) };
  const dbSize = (await db.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size')).rows[0]!.size;
  const result = {
    devices,
    key_form: keyForm,
    workers: workerCount,
    upload_s: Number(uploaded.toFixed(2)),
    issued_s: Number(issuedAt.toFixed(2)),
    end_to_end_s: Number(elapsed.toFixed(2)),
    devices_per_s: Math.round(devices / elapsed),
    certificates_per_s: Math.round(done.issued / elapsed),
    raw_hsm_signatures_per_s: Math.round(rawRate),
    ratio_to_raw_hsm: Number((done.issued / elapsed / rawRate).toFixed(3)),
    cpu_core_us_per_certificate: cpu,
    peak_rss_mb: rss,
    database_mb: Math.round(Number(dbSize) / 1024 / 1024),
    ...(hybrid ? { hybrid } : {}),
  };
  log(`  ${devices} devices end to end in ${result.end_to_end_s} s (upload ${result.upload_s} s, all issued at ${result.issued_s} s): ${result.devices_per_s} devices/s, ${result.certificates_per_s} certificates/s`);
  log(`  ratio to raw HSM signing rate (${result.raw_hsm_signatures_per_s}/s): ${result.ratio_to_raw_hsm}`);
  log(`  CPU per certificate: ${cpu.total_core_us_per_certificate} core-us (${Object.entries(cpu.by_process).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  log(`  peak RSS: issuer-api ${rss.api} MB, workers ${rss.workers.join(', ')} MB; database ${result.database_mb} MB`);
  return result;
});
