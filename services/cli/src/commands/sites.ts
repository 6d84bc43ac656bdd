import type { Command } from 'commander';
import { loadConfig } from '@fleetpki/core';
import { formatStatus, sitesDown, sitesStatus, sitesUp } from '@fleetpki/sites';

export function registerSitesCommands(program: Command): void {
  const sites = program.command('sites').description('the local two-site topology: SoftHSM tokens, PostgreSQL primary/standby, Redis');
  sites
    .command('up')
    .description('create (first run) and start both sites; a no-op for parts already running')
    .action(async () => {
      const config = loadConfig();
      await sitesUp(config, (line) => console.log(line));
    });
  sites
    .command('down')
    .description('stop every process of both sites; data is kept')
    .action(async () => {
      await sitesDown(loadConfig(), (line) => console.log(line));
    });
  sites
    .command('status')
    .description('each part of each site: up/down, role, replication lag')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }) => {
      const statuses = await sitesStatus(loadConfig());
      console.log(options.json ? JSON.stringify({ sites: statuses }, null, 2) : formatStatus(statuses));
    });
}
