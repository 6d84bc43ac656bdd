import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { createPool, type Pool } from '@fleetpki/store';

/** Config and a database pool for this process's site, closed when `fn` ends. */
export async function withDatabase<T>(fn: (ctx: { config: FleetConfig; pool: Pool }) => Promise<T>, options: { site?: string } = {}): Promise<T> {
  const config = loadConfig(options.site ? { ...process.env, FLEETPKI_SITE: options.site } : process.env);
  const pool = createPool(config.sites[config.site].databaseUrl, { applicationName: 'fleetpki-cli', max: 4 });
  try {
    return await fn({ config, pool });
  } finally {
    await pool.end();
  }
}

/** Operator identity for the audit log: FLEETPKI_ACTOR, else the OS user. */
export function cliActor(): string {
  return process.env.FLEETPKI_ACTOR ?? `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'unknown'}`;
}
