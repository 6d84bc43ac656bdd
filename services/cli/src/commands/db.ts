import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '@fleetpki/core';
import { createPool, migrate, migrationFileName, pgLinkSecurity } from '@fleetpki/store';

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the CA database');
  db.command('migrate')
    .description("apply pending migrations/NNNN_name.sql to the active site's database")
    .action(async () => {
      const config = loadConfig();
      const pool = createPool(config.sites[config.site].databaseUrl, { applicationName: 'fleetpki-migrate', max: 1, security: pgLinkSecurity(config, 'owner') });
      try {
        const result = await migrate(pool, join(config.repoRoot, 'migrations'));
        for (const m of result.applied) console.log(`applied ${migrationFileName(m)}`);
        console.log(`database at version ${result.alreadyApplied + result.applied.length} (${result.applied.length} applied now)`);
      } finally {
        await pool.end();
      }
    });
}
