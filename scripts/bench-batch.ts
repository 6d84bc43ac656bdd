/**
 * pnpm bench batch --devices N [--workers W] [--public-keys] [--hybrid] [--json]
 * End to end, as a factory sees it: upload the manifest (streamed) to an issuer-api process, W batch
 * worker processes issue it, then every certificate is downloaded. Prints devices/s, certificates/s, the
 * raw HSM signing rate of W processes measured in the same run and the ratio, each process's peak RSS,
 * and the database size. The manifest is generated first (not timed). --hybrid then downloads the
 * batch's symmetric device keys (mac + enc per device, diversified and wrapped in the HSM) and prints
 * keys/s and the end-to-end rate with them.
 */
import { mkdirSync, statSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeviceKeyService, issueApiToken } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { FleetApiClient } from '@fleetpki/client';
import { loadConfig } from '@fleetpki/core';
import { generateManifest, signManifestFile } from '@fleetpki/manifest';
import { createPool, listMasterKeys, setManufacturerManifestKey, setManufacturerTransportKey, upsertManufacturer } from '@fleetpki/store';
import { measureRawHsmRateProcesses, peakRssMb } from './lib/bench.js';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    workers: { type: 'string', default: '2' },
    'public-keys': { type: 'boolean', default: false },
    hybrid: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const workerCount = Number(args.workers);
const keyForm = args['public-keys'] ? 'publicKey' : 'csr';
const log = (line: string) => {
  if (!args.json) console.log(line);
};

const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
const site = config.sites.a;
const dir = join(config.stateDir, 'bench');
mkdirSync(dir, { recursive: true });

log(`raw HSM signing rate (${workerCount} processes x 4 sessions, 3 s) ...`);
const rawRate = await measureRawHsmRateProcesses(config, { processes: workerCount, sessions: 4, seconds: 3 });
log(`  ${Math.round(rawRate)} signatures/s`);

const manifestPath = join(dir, `manifest-${devices}-${keyForm}.ndjson`);
log(`generating a manifest of ${devices} devices (${keyForm}) ...`);
let t = performance.now();
await generateManifest({ devices, out: manifestPath, keyForm });
log(`  ${statSync(manifestPath).size} bytes in ${((performance.now() - t) / 1000).toFixed(1)} s`);

const db = createPool(site.databaseUrl, { max: 2 });
await upsertManufacturer(db, 'bench', 'Benchmark Meters');
const token = await issueApiToken(db, { site: 'a', actor: 'bench', name: 'bench-batch', role: 'factory', manufacturerId: 'bench', expiresDays: 1 });
let signature: string | undefined;
if (keyForm === 'publicKey') {
  const factory = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await setManufacturerManifestKey(db, 'bench', factory.publicKey.export({ format: 'der', type: 'spki' }));
  signature = await signManifestFile(manifestPath, factory.privateKey);
}

// The benchmark's own HSM session, for creating master keys when --hybrid needs them.
const hybridStore = args.hybrid ? await openSiteKeyStore(config, site, { sessions: 1 }) : undefined;
const api = startService(config, 'issuer-api', { FLEETPKI_SITE: 'a' });
const workers = Array.from({ length: workerCount }, (_, i) => startService(config, 'batch-worker', { FLEETPKI_SITE: 'a', FLEETPKI_WORKER_RECONCILE: i === 0 ? '1' : '0' }));
try {
  await waitForHttp(`http://127.0.0.1:${site.apiPort}/readyz`);
  const client = new FleetApiClient(`http://127.0.0.1:${site.apiPort}`, token);
  log(`submitting (upload, then ${workerCount} workers issue) ...`);
  t = performance.now();
  const { batch } = await client.submitBatch(manifestPath, signature ? { signature } : {});
  const uploaded = (performance.now() - t) / 1000;
  log(`  accepted in ${uploaded.toFixed(1)} s: ${batch.certificatesRequested} certificates in ${batch.chunks.total} chunks`);
  let lastShown = 0;
  const done = await client.waitForBatch(batch.id, (b) => {
    if (!args.json && Date.now() - lastShown > 5_000) {
      lastShown = Date.now();
      console.log(`  ${b.issued}/${b.certificatesRequested} issued, ${b.certificatesPerSecond}/s`);
    }
  }, 250);
  const issuedAt = (performance.now() - t) / 1000;
  let downloaded = 0;
  for await (const line of client.batchResults(batch.id)) if (line.type === 'certificate') downloaded++;
  const elapsed = (performance.now() - t) / 1000;
  if (downloaded !== done.issued || done.issued !== devices) throw new Error(`expected ${devices} certificates, issued ${done.issued}, downloaded ${downloaded}`);

  let hybrid: { keys: number; keys_s: number; keys_per_s: number; devices_per_s_with_keys: number; ratio_to_raw_hsm_with_keys: number } | undefined;
  if (args.hybrid) {
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
    benchmark: 'batch',
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
    peak_rss_mb: rss,
    database_mb: Math.round(Number(dbSize) / 1024 / 1024),
    ...(hybrid ? { hybrid } : {}),
  };
  log(`  ${devices} devices end to end in ${result.end_to_end_s} s (upload ${result.upload_s} s, all issued at ${result.issued_s} s): ${result.devices_per_s} devices/s, ${result.certificates_per_s} certificates/s`);
  log(`  ratio to raw HSM signing rate (${result.raw_hsm_signatures_per_s}/s with ${workerCount} processes): ${result.ratio_to_raw_hsm}`);
  log(`  peak RSS: issuer-api ${rss.api} MB, workers ${rss.workers.join(', ')} MB; database ${result.database_mb} MB`);
  console.log(JSON.stringify(result));
} finally {
  await Promise.all([api, ...workers].map(stopProcess));
  await hybridStore?.close();
  await db.end();
}
