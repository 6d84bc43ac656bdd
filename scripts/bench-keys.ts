/**
 * pnpm bench keys [--devices N] [--json] [--deadline S]
 * Hybrid keys: N devices x 2 roles (mac, enc) diversified and wrapped in site A's HSM for a factory's
 * transport key, one bundle, as `fleetpki keys issue` does. Prints keys/s, the raw HSM signing rate
 * measured in the same run and the ratio, and checks the bundle with the factory-side unwrap.
 */
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DeviceKeyService, registerSyntheticManufacturer } from '@fleetpki/ca';
import { factoryTransportKek, unwrapDeviceKey, type DeviceKeyBundleHeader } from '@fleetpki/client';
import { loadConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createPool, listMasterKeys, setManufacturerTransportKey } from '@fleetpki/store';
import { benchOptions, measureRawHsmRate } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';

const { values: args } = parseArgs({ options: { devices: { type: 'string', default: '20000' }, ...benchOptions(900) } });
const devices = Number(args.devices);
const run = new BenchRun('keys', { deadlineSeconds: Number(args.deadline), json: args.json });

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  run.begin(`raw HSM signing rate (one signing thread per core, ${args['hsm-seconds']} s)`);
  const rawRate = await measureRawHsmRate(config, { seconds: Number(args['hsm-seconds']) });
  run.log(`  ${Math.round(rawRate)} signatures/s`);

  const pool = createPool(config.sites.a.databaseUrl, { max: 2 });
  run.onCleanup(() => pool.end());
  const keyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  run.onCleanup(() => keyStore.close());
  const service = new DeviceKeyService(pool, keyStore, 'a');
  const active = new Set((await listMasterKeys(pool)).filter((m) => m.status === 'active').map((m) => m.role));
  for (const role of ['mac', 'enc'] as const) if (!active.has(role)) run.log(`  created master key ${(await service.createMasterKey(role, 'bench')).label}`);
  const factory = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await registerSyntheticManufacturer(pool, { site: 'a', id: 'bench-hybrid', name: 'Benchmark Hybrid Meters', actor: 'bench' });
  await setManufacturerTransportKey(pool, 'bench-hybrid', factory.publicKey.export({ format: 'der', type: 'spki' }));
  const eui64s = Array.from({ length: devices }, () => Buffer.from(syntheticEui64('bench-hybrid'), 'hex'));
  run.begin(`diversifying and wrapping ${devices * 2} device keys (${devices} devices x mac, enc)`);
  const t = performance.now();
  const bundle = await service.issueBundle({ manufacturerId: 'bench-hybrid', eui64s, roles: ['mac', 'enc'], actor: 'bench' });
  const seconds = run.seconds(t);
  const kek = factoryTransportKek(bundle.header as DeviceKeyBundleHeader, factory.privateKey);
  for (const line of bundle.keys) unwrapDeviceKey(kek, line);
  const result = {
    devices,
    keys: bundle.keys.length,
    seconds,
    keys_per_s: Math.round(bundle.keys.length / seconds),
    raw_hsm_signatures_per_s: Math.round(rawRate),
    ratio_to_raw_hsm: Number((bundle.keys.length / seconds / rawRate).toFixed(2)),
    factory_unwrap: 'every key unwrapped, every KCV matched',
  };
  run.log(`  ${result.keys} keys in ${result.seconds} s: ${result.keys_per_s} keys/s (one HSM session); ratio to raw signing ${result.ratio_to_raw_hsm}; factory side: ${result.factory_unwrap}`);
  return result;
});
