import type { Command } from 'commander';
import { EXAMPLE_CONFIG, describeConfig, loadConfig, loadDeployment } from '@fleetpki/core';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('the configuration file (/etc/fleetpki/fleetpki.yaml, or FLEETPKI_CONFIG=<path>)');
  config
    .command('check')
    .description('validate the configuration (file, environment over it, defaults) and print the resolved deployment, secrets redacted')
    .option('--file <path>', 'the file to check (default: FLEETPKI_CONFIG, else /etc/fleetpki/fleetpki.yaml if present)')
    .action((options: { file?: string }) => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...(options.file ? { FLEETPKI_CONFIG: options.file } : {}) };
      const { fromEnv } = loadDeployment(env);
      process.stdout.write(describeConfig(loadConfig(env), fromEnv));
      console.error(`configuration valid${env.FLEETPKI_CONFIG ? ` (${env.FLEETPKI_CONFIG})` : ''}`);
    });
  config
    .command('example')
    .description('print a commented example for three hosts: site A, site B and the witness (infra/fleetpki.example.yaml)')
    .action(() => {
      process.stdout.write(EXAMPLE_CONFIG);
    });
}
