import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { progressBar } from '../progress.js';
import { FleetError, parseKeyRole } from '@fleetpki/core';
import { generateManifest, signManifestFile } from '@fleetpki/manifest';

export function registerManifestCommands(program: Command): void {
  const manifest = program.command('manifest').description('factory manifests');

  manifest
    .command('generate')
    .description('write a test manifest (NDJSON) with real P-256 keys, generated in parallel')
    .requiredOption('--devices <n>', 'number of devices', (v) => Number(v))
    .requiredOption('--out <file>', 'output file')
    .option('--roles <roles>', 'key roles per device, comma-separated', 'digitalSignature')
    .option('--public-keys', 'raw public keys instead of CSRs (the manifest must then be signed)')
    .option('--eui-prefix <hex>', 'first 3 bytes of the EUI-64s (default random)')
    .action(async (options: { devices: number; out: string; roles: string; publicKeys?: boolean; euiPrefix?: string }) => {
      if (!Number.isInteger(options.devices) || options.devices < 1) throw new FleetError('ARGUMENT_INVALID', '--devices must be a positive integer');
      const roles = options.roles.split(',').map((r) => parseKeyRole(r.trim()));
      const bar = progressBar('generating [{bar}] {percentage}% {value}/{total} devices | ETA {eta}s');
      bar.start(options.devices, 0);
      const started = Date.now();
      const result = await generateManifest({
        devices: options.devices,
        out: options.out,
        roles,
        keyForm: options.publicKeys ? 'publicKey' : 'csr',
        ...(options.euiPrefix ? { euiPrefix: options.euiPrefix } : {}),
        onProgress: (n) => bar.update(n),
      });
      bar.stop();
      const seconds = (Date.now() - started) / 1000;
      console.log(`wrote ${result.devices} devices (${result.keys} keys, EUI-64 prefix ${result.euiPrefix}) to ${options.out} in ${seconds.toFixed(1)} s (${Math.round(result.devices / seconds)} devices/s)`);
    });

  manifest
    .command('sign <file>')
    .description("sign a manifest with the factory's P-256 key (PEM); writes FILE.sig (base64) for `batch submit --signature-file`")
    .requiredOption('--key <pem>', "the factory's private key (PEM)")
    .action(async (file: string, options: { key: string }) => {
      const key = createPrivateKey(readFileSync(options.key));
      const signature = await signManifestFile(file, key);
      writeFileSync(`${file}.sig`, signature + '\n');
      console.log(`wrote ${file}.sig`);
    });
}
