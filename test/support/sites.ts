import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { TEST_DATABASE_PREFIX, TEST_TOKEN_PREFIX, hasTestDeploymentDir, sitesUp } from '@fleetpki/sites';
import { createPool, migrate, type Pool } from '@fleetpki/store';

/**
 * Brings both local sites up (a no-op when running) and migrates site A. Tests use the real parts, in a
 * deployment of their own (a throw-away database, tokens and folder that scripts/run-tests.sh names and
 * removes), never the installation's.
 */
export async function ensureSites(): Promise<FleetConfig> {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  if (!config.pgDatabase.startsWith(TEST_DATABASE_PREFIX) || !config.hsmTokenPrefix.startsWith(TEST_TOKEN_PREFIX) || !hasTestDeploymentDir(config)) {
    throw new Error(`tests run in a deployment of their own, not in "${config.pgDatabase}" with files in ${config.deploymentDir}: run them with \`pnpm test [file]\` (scripts/run-tests.sh)`);
  }
  await sitesUp(config);
  const pool = createPool(config.sites.a.databaseUrl, { max: 1 });
  try {
    await migrate(pool, join(config.repoRoot, 'migrations'));
  } finally {
    await pool.end();
  }
  return config;
}

/**
 * The base URL of the issuer API or a status responder listening on `port` of `host`: https when the
 * configuration gives that part a pair (the secure simulation of scripts/test-secure.sh, whose CA the
 * test processes trust through NODE_EXTRA_CA_CERTS), else http.
 */
export function localUrl(config: FleetConfig, part: 'api' | 'status', port: number | string, host = '127.0.0.1'): string {
  return `${config.tls.parts[part] ? 'https' : 'http'}://${host}:${port}`;
}

/** The URL of another database on the same cluster as `url`. */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A throw-away database on site A (replicated to B like everything else). */
export async function createScratchDatabase(config: FleetConfig): Promise<{ name: string; urlA: string; urlB: string; drop: () => Promise<void> }> {
  const name = `scratch_${randomBytes(4).toString('hex')}`;
  const admin = createPool(databaseUrl(config.sites.a.databaseUrl, 'postgres'), { max: 1 });
  await admin.query(`CREATE DATABASE ${name}`);
  return {
    name,
    urlA: databaseUrl(config.sites.a.databaseUrl, name),
    urlB: databaseUrl(config.sites.b.databaseUrl, name),
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export type { Pool };
