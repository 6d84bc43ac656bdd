import { FleetError, type FleetConfig } from '@fleetpki/core';
import { dropChunkQueue, redisLink } from '@fleetpki/queue';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { custodianPinFiles, deleteSiteTokens, deleteToken, listTokensOf } from './hsm-tokens.js';
import { isClusterRunning } from './postgres-cluster.js';
import { ownerPool } from './ca-databases.js';
import { currentRoles } from './topology-file.js';

/**
 * Throw-away deployments on the local sites: a database of their own on the shared clusters, SoftHSM
 * tokens of their own (`<prefix>-a`, `-b` in the sites' HSMs, `-root` in an offline root HSM of their
 * own), a Redis key prefix of their own, and a folder of their own for every file they write
 * (FLEETPKI_DEPLOYMENT_DIR). The test suite runs in one (scripts/run-tests.sh), so it never reads or
 * writes the installation's CA or its files, and removes it afterwards.
 */
export const TEST_DATABASE_PREFIX = 'fleetpki_test_';
export const TEST_TOKEN_PREFIX = 'fleetpki-test-';
/** A test run's folder, `<tmp>/fleetpki-test-<run id>.<random>` (scripts/run-tests.sh makes it). */
const TEST_DEPLOYMENT_DIR = /^fleetpki-test-([0-9a-f]{4,12})\.[A-Za-z0-9]+$/;

/** Whether this configuration's own files live in a test run's folder of their own, apart from the installation's state folder. */
export function hasTestDeploymentDir(config: FleetConfig): boolean {
  return config.deploymentDir !== config.stateDir && TEST_DEPLOYMENT_DIR.test(basename(config.deploymentDir));
}

/** The database and token prefix of a test run with this id (a few hex digits). */
export function testDeployment(runId: string): { database: string; tokenPrefix: string } {
  if (!/^[0-9a-f]{4,12}$/.test(runId)) throw new FleetError('CONFIG_INVALID', `a test run id is 4-12 hex digits, got "${runId}"`);
  return { database: `${TEST_DATABASE_PREFIX}${runId}`, tokenPrefix: `${TEST_TOKEN_PREFIX}${runId}` };
}

/** Drops this configuration's database, tokens and queue keys. Refuses the installation's own deployment. */
export async function dropDeployment(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<void> {
  if (!config.pgDatabase.startsWith(TEST_DATABASE_PREFIX) || !config.hsmTokenPrefix.startsWith(TEST_TOKEN_PREFIX)) {
    throw new FleetError('DEPLOYMENT_PROTECTED', `only test deployments (${TEST_DATABASE_PREFIX}*, tokens ${TEST_TOKEN_PREFIX}*) are dropped this way; "${config.pgDatabase}" is not one`);
  }
  const { primary } = currentRoles(config);
  if (await isClusterRunning(primary)) {
    const admin = ownerPool(config, primary, 'postgres', { max: 1, applicationName: 'fleetpki-sites' });
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${config.pgDatabase} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    log(`dropped database ${config.pgDatabase}`);
  }
  for (const site of [config.sites.a, config.sites.b]) {
    for (const label of await deleteSiteTokens(config, site)) log(`site ${site.id}: deleted token ${label}`);
    await dropChunkQueue(redisLink(config, site), config.pgDatabase).catch(() => undefined);
  }
  if ((await listTokensOf(config.rootHsm.softhsmConf)).includes(config.rootTokenLabel)) {
    await deleteToken(config.rootHsm.softhsmConf, config.rootTokenLabel);
    log(`offline root: deleted token ${config.rootTokenLabel}`);
  }
  const pins = custodianPinFiles(config);
  for (const file of [pins.rootPin, pins.rootSoPin, pins.soPin(config.sites.a), pins.soPin(config.sites.b)]) rmSync(file, { force: true });
}

/**
 * Removes a test run's folder (its TLS material, PINs, root HSM, checkpoints): the run's last step, after
 * dropDeployment. Only a folder named as scripts/run-tests.sh names them, never the state folder; a
 * deployment that a test makes beside its run's (same folder) is dropped without it.
 */
export function removeTestDeploymentDir(config: FleetConfig, log: (line: string) => void = () => undefined): void {
  if (!hasTestDeploymentDir(config)) {
    throw new FleetError('DEPLOYMENT_PROTECTED', `only a test run's own folder (<tmp>/fleetpki-test-<id>.*) is removed this way; "${config.deploymentDir}" is not one`);
  }
  rmSync(config.deploymentDir, { recursive: true, force: true });
  log(`removed ${config.deploymentDir}`);
}

/** The environment and command line of every other running process (what says which deployment it works in). */
function otherProcesses(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)) {
    try {
      found.push(`${readFileSync(`/proc/${pid}/environ`, 'utf8')}\0${readFileSync(`/proc/${pid}/cmdline`, 'utf8')}`);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** Is the shell of the run that made this folder still running (its pid in .run-pid)? */
function runShellAlive(dir: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, '.run-pid'), 'utf8').trim());
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Test databases that a running process still works in (its environment names it): another run's. */
function databasesInUse(processes: readonly string[]): Set<string> {
  const inUse = new Set<string>();
  for (const text of processes) {
    const m = /(?:^|\0)FLEETPKI_PG_DATABASE=([^\0]+)/.exec(text);
    if (m) inUse.add(m[1]!);
  }
  return inUse;
}

/**
 * Removes what killed test runs left behind: test databases nobody is connected to and no running
 * process works in (a concurrent run between two files has no connection, but its processes name its
 * database), and test tokens, custodian PIN files and test folders whose run is gone. Run before a test run.
 */
export async function sweepTestDeployments(config: FleetConfig, log: (line: string) => void = () => undefined): Promise<void> {
  const { primary } = currentRoles(config);
  if (!(await isClusterRunning(primary))) return;
  const admin = ownerPool(config, primary, 'postgres', { max: 1, applicationName: 'fleetpki-sites' });
  let live: Set<string>;
  const processes = otherProcesses();
  const inUse = databasesInUse(processes);
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
  // A run lives while its database does, or while a process works in it (before its first integration test made the database).
  const alive = (runId: string) => live.has(`${TEST_DATABASE_PREFIX}${runId}`) || inUse.has(`${TEST_DATABASE_PREFIX}${runId}`);
  // The installation's root HSM too: runs from before test runs had folders of their own kept their root tokens there.
  const legacyRootHsm = join(config.stateDir, 'root-hsm', 'softhsm2.conf');
  for (const hsm of new Set([config.sites.a.softhsmConf, config.sites.b.softhsmConf, config.rootHsm.softhsmConf, legacyRootHsm])) {
    for (const label of await listTokensOf(hsm)) {
      const m = new RegExp(`^${TEST_TOKEN_PREFIX}([0-9a-f]+)-(a|b|root)$`).exec(label);
      if (!m || alive(m[1]!)) continue;
      await deleteToken(hsm, label);
      log(`deleted stale test token ${label}`);
    }
  }
  // Custodian PIN files that older runs left in the installation's folder.
  for (const custodians of new Set([custodianPinFiles(config).dir, join(config.stateDir, 'custodians')])) {
    for (const file of existsSync(custodians) ? readdirSync(custodians) : []) {
      const m = new RegExp(`^${TEST_TOKEN_PREFIX}([0-9a-f]+)-`).exec(file);
      if (m && !alive(m[1]!)) rmSync(join(custodians, file), { force: true });
    }
  }
  // Folders of killed runs: no database left, no process working in them, and the run's shell gone
  // (scripts/run-tests.sh writes its pid there: a run of another checkout has its database elsewhere).
  for (const name of readdirSync(tmpdir())) {
    const m = TEST_DEPLOYMENT_DIR.exec(name);
    const dir = join(tmpdir(), name);
    if (!m || dir === config.deploymentDir || alive(m[1]!) || processes.some((p) => p.includes(dir)) || runShellAlive(dir)) continue;
    rmSync(dir, { recursive: true, force: true });
    log(`removed stale test folder ${dir}`);
  }
}
