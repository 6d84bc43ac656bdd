import { FleetError, type FleetConfig } from '@fleetpki/core';
import { dropChunkQueue } from '@fleetpki/queue';
import { createPool } from '@fleetpki/store';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { custodianPinFiles, listTokens, listTokensOf, tokensOfSite } from './hsm-tokens.js';
import { isClusterRunning } from './postgres-cluster.js';
import { run } from './exec.js';
import { currentRoles } from './topology-file.js';

/**
 * Throw-away deployments on the local sites: a database of their own on the shared clusters, SoftHSM
 * tokens of their own (`<prefix>-a`, `-b`, `-root`) and a Redis key prefix of their own. The test suite
 * runs in one (scripts/run-tests.sh), so it never reads or writes the installation's CA, and removes it
 * afterwards.
 */
export const TEST_DATABASE_PREFIX = 'fleetpki_test_';
export const TEST_TOKEN_PREFIX = 'fleetpki-test-';

/** The database and token prefix of a test run with this id (a few hex digits). */
export function testDeployment(runId: string): { database: string; tokenPrefix: string } {
  if (!/^[0-9a-f]{4,12}$/.test(runId)) throw new FleetError('CONFIG_INVALID', `a test run id is 4-12 hex digits, got "${runId}"`);
  return { database: `${TEST_DATABASE_PREFIX}${runId}`, tokenPrefix: `${TEST_TOKEN_PREFIX}${runId}` };
}

async function deleteToken(softhsmConf: string, label: string): Promise<void> {
  // No PIN needed: SoftHSM removes the token's folder (and with it every object in it).
  await run('softhsm2-util', ['--delete-token', '--token', label], { env: { SOFTHSM2_CONF: softhsmConf } });
}

/** Drops this configuration's database, tokens and queue keys. Refuses the installation's own deployment. */
export async function dropDeployment(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<void> {
  if (!config.pgDatabase.startsWith(TEST_DATABASE_PREFIX) || !config.hsmTokenPrefix.startsWith(TEST_TOKEN_PREFIX)) {
    throw new FleetError('DEPLOYMENT_PROTECTED', `only test deployments (${TEST_DATABASE_PREFIX}*, tokens ${TEST_TOKEN_PREFIX}*) are dropped this way; "${config.pgDatabase}" is not one`);
  }
  const { primary } = currentRoles(config);
  if (await isClusterRunning(primary)) {
    const admin = createPool(`postgres://${config.pgUser}@${primary.host}:${primary.pgPort}/postgres`, { max: 1, applicationName: 'fleetpki-sites' });
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${config.pgDatabase} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    log(`dropped database ${config.pgDatabase}`);
  }
  for (const site of [config.sites.a, config.sites.b]) {
    const present = await listTokens(site);
    for (const label of tokensOfSite(config, site)) {
      if (!present.includes(label)) continue;
      await deleteToken(site.softhsmConf, label);
      log(`site ${site.id}: deleted token ${label}`);
    }
    await dropChunkQueue(site.redisUrl, config.pgDatabase).catch(() => undefined);
  }
  if ((await listTokensOf(config.rootHsm.softhsmConf)).includes(config.rootTokenLabel)) {
    await deleteToken(config.rootHsm.softhsmConf, config.rootTokenLabel);
    log(`offline root: deleted token ${config.rootTokenLabel}`);
  }
  const pins = custodianPinFiles(config);
  for (const file of [pins.rootPin, pins.rootSoPin, pins.soPin(config.sites.a), pins.soPin(config.sites.b)]) rmSync(file, { force: true });
}

/** Test databases that a running process still works in (its environment names it): another run's. */
function databasesInUse(): Set<string> {
  const inUse = new Set<string>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const m = /(?:^|\0)FLEETPKI_PG_DATABASE=([^\0]+)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'));
      if (m && Number(pid) !== process.pid) inUse.add(m[1]!);
    } catch {
      // gone, or not ours to read
    }
  }
  return inUse;
}

/**
 * Removes what killed test runs left behind: test databases nobody is connected to and no running
 * process works in (a concurrent run between two files has no connection, but its processes name its
 * database), and test tokens and custodian PIN files whose database is gone. Run before a test run.
 */
export async function sweepTestDeployments(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<void> {
  const { primary } = currentRoles(config);
  if (!(await isClusterRunning(primary))) return;
  const admin = createPool(`postgres://${config.pgUser}@${primary.host}:${primary.pgPort}/postgres`, { max: 1, applicationName: 'fleetpki-sites' });
  let live: Set<string>;
  const inUse = databasesInUse();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      `SELECT datname FROM pg_database d WHERE datname LIKE $1 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)`,
      [`${TEST_DATABASE_PREFIX}%`],
    );
    for (const { datname } of rows.filter((r) => !inUse.has(r.datname) && r.datname !== config.pgDatabase)) {
      await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
      log(`dropped stale test database ${datname}`);
    }
    live = new Set((await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${TEST_DATABASE_PREFIX}%`])).rows.map((r) => r.datname));
  } finally {
    await admin.end();
  }
  for (const hsm of [config.sites.a.softhsmConf, config.sites.b.softhsmConf, config.rootHsm.softhsmConf]) {
    for (const label of await listTokensOf(hsm)) {
      const m = new RegExp(`^${TEST_TOKEN_PREFIX}([0-9a-f]+)-(a|b|root)$`).exec(label);
      // A run that is still starting has its tokens before its database: its processes name it.
      if (!m || live.has(`${TEST_DATABASE_PREFIX}${m[1]}`) || inUse.has(`${TEST_DATABASE_PREFIX}${m[1]}`)) continue;
      await deleteToken(hsm, label);
      log(`deleted stale test token ${label}`);
    }
  }
  const custodians = custodianPinFiles(config).dir;
  for (const file of existsSync(custodians) ? readdirSync(custodians) : []) {
    const m = new RegExp(`^${TEST_TOKEN_PREFIX}([0-9a-f]+)-`).exec(file);
    if (m && !live.has(`${TEST_DATABASE_PREFIX}${m[1]}`) && !inUse.has(`${TEST_DATABASE_PREFIX}${m[1]}`)) rmSync(join(custodians, file), { force: true });
  }
}
