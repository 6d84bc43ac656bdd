import type { Command } from 'commander';
import { EXAMPLE_CONFIG, FleetError, describeConfig, loadConfig, loadDeployment, readServerTls, type HttpsPart } from '@fleetpki/core';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('the configuration file (/etc/fleetpki/fleetpki.yaml, or FLEETPKI_CONFIG=<path>)');
  config
    .command('check')
    .description('validate the configuration (file, environment over it, defaults) and print the resolved deployment, secrets redacted')
    .option('--file <path>', 'the file to check (default: FLEETPKI_CONFIG, else /etc/fleetpki/fleetpki.yaml if present)')
    .option('--pair <part>', 'also read tls.<part>\'s certificate and key (api or status) and check they belong together: the units run this before a reload, so `systemctl reload` fails on a bad rotation instead of the next restart')
    .action((options: { file?: string; pair?: string }) => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...(options.file ? { FLEETPKI_CONFIG: options.file } : {}) };
      const { fromEnv } = loadDeployment(env);
      const loaded = loadConfig(env);
      if (options.pair !== undefined) {
        if (options.pair !== 'api' && options.pair !== 'status') throw new FleetError('CONFIG_INVALID', `--pair: expected api or status, got "${options.pair}"`);
        const part: HttpsPart = options.pair;
        if (!readServerTls(loaded, part)) throw new FleetError('CONFIG_INVALID', `--pair ${part}: the configuration names no tls.${part}`);
        console.error(`tls.${part}: the certificate and its key belong together`);
        return;
      }
      process.stdout.write(describeConfig(loaded, fromEnv));
      console.error(`configuration valid${env.FLEETPKI_CONFIG ? ` (${env.FLEETPKI_CONFIG})` : ''}`);
    });
  config
    .command('example')
    .description('print a commented example for three hosts: site A, site B and the witness (infra/fleetpki.example.yaml)')
    .action(() => {
      process.stdout.write(EXAMPLE_CONFIG);
    });
}
