/**
 * The test runner's guard (scripts/run-tests.sh): tests work in a deployment of their own, and this
 * checks that the installation they run beside was left as it was.
 *   record <file>  writes the installation's fingerprint (run with the installation's environment)
 *   check <file>   takes it again and exits 1 naming every difference
 * The fingerprint (scripts/lib/installation-fingerprint.ts) covers the state folder outside the shared
 * clusters' own data, the installation's database (schema version, row counts of the tables that say
 * whom and what the CA trusts), the objects of the installation's SoftHSM tokens, and the repository's
 * tracked and untracked files as `git status` sees them.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { currentRoles, isClusterRunning } from '@fleetpki/sites';
import { createPool } from '@fleetpki/store';
import { NOT_READ, compareFingerprints, describeChanges, isClusterPath, type Fingerprint } from './installation-fingerprint.js';

type Entries = Record<string, string>;

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const modeOf = (mode: number) => (mode & 0o7777).toString(8);

/** Every file, folder and link under `root`, except the clusters' own (never descended into). */
async function folderEntries(root: string, shownAs: string, into: Entries): Promise<void> {
  if (!existsSync(root)) return;
  const real = realpathSync(root);
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (err) {
      into[`folder ${join(shownAs, relative(real, dir))}`] = `${NOT_READ}${(err as Error).message}`;
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const rel = relative(real, path);
      if (isClusterPath(rel)) continue;
      const item = join(shownAs, rel);
      try {
        const stat = lstatSync(path);
        if (stat.isDirectory()) {
          into[`folder ${item}`] = `mode=${modeOf(stat.mode)}`;
          await walk(path);
        } else if (stat.isSymbolicLink()) into[`link ${item}`] = `-> ${readlinkSync(path)}`;
        else if (stat.isFile()) into[`file ${item}`] = `sha256=${await sha256Of(path)} mode=${modeOf(stat.mode)}`;
        else into[`file ${item}`] = `special mode=${modeOf(stat.mode)}`;
      } catch (err) {
        // Gone between listing and reading: what is left afterwards is what counts.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') into[`file ${item}`] = `${NOT_READ}${(err as Error).message}`;
      }
    }
  };
  await walk(real);
}

/** Tables whose rows say whom and what the CA trusts (and what it issued and revoked). */
const TRUST_TABLES = ['cas', 'ca_certificate_history', 'people', 'api_tokens', 'organisation_certificates', 'console_sessions', 'manufacturers', 'approval_requests', 'key_encryption_keys', 'key_backups', 'device_master_keys', 'audit_keys', 'cmp_secrets', 'certificates', 'revocations'];

async function databaseEntries(config: FleetConfig, into: Entries): Promise<void> {
  const item = `database ${config.pgDatabase}`;
  const { primary } = currentRoles(config);
  if (!(await isClusterRunning(primary))) {
    into[item] = `${NOT_READ}site ${primary.id}'s PostgreSQL is not running`;
    return;
  }
  const pool = createPool(primary.databaseUrl, { max: 1, connectionTimeoutMillis: 5_000, applicationName: 'fleetpki-test-guard' });
  try {
    const tables = new Set((await pool.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`)).rows.map((r) => r.name));
    into[item] = 'present';
    if (tables.has('schema_migrations')) {
      const { rows } = await pool.query<{ version: number; n: number }>('SELECT coalesce(max(version), 0)::int AS version, count(*)::int AS n FROM schema_migrations');
      into[`${item}: schema`] = `version ${rows[0]!.version}, ${rows[0]!.n} migrations`;
    } else into[`${item}: schema`] = 'not migrated';
    for (const table of TRUST_TABLES.filter((t) => tables.has(t))) {
      const { rows } = await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
      into[`${item}: rows in ${table}`] = rows[0]!.n;
    }
  } catch (err) {
    // 3D000: no such database (an installation before its first `sites up` or demo).
    into[item] = (err as { code?: string }).code === '3D000' ? 'absent' : `${NOT_READ}${(err as Error).message}`;
  } finally {
    await pool.end();
  }
}

/**
 * A SoftHSM token's objects, read from its folder (one file per object), without a PIN: logging in would
 * itself rewrite the token's own record (token.object), and every object file stays byte for byte the
 * same while it is only used. The folder is the one whose token record carries the label (as
 * packages/sites/src/key-migration.ts finds it).
 */
function tokenEntries(softhsmConf: string, label: string, where: string, into: Entries): void {
  const item = `token ${label} (${where})`;
  const tokenDir = existsSync(softhsmConf) ? /^directories\.tokendir\s*=\s*(.+)$/m.exec(readFileSync(softhsmConf, 'utf8'))?.[1]?.trim() : undefined;
  if (!tokenDir || !existsSync(tokenDir)) {
    into[item] = 'absent';
    return;
  }
  const padded = Buffer.from(label.padEnd(32, ' '));
  try {
    const folders = readdirSync(tokenDir).filter((d) => existsSync(join(tokenDir, d, 'token.object')) && readFileSync(join(tokenDir, d, 'token.object')).includes(padded));
    if (folders.length !== 1) {
      into[item] = folders.length === 0 ? 'absent' : `${NOT_READ}${folders.length} token folders labelled ${label} in ${tokenDir}`;
      return;
    }
    into[item] = 'present';
    const folder = join(tokenDir, folders[0]!);
    for (const file of readdirSync(folder).filter((f) => f.endsWith('.object') && f !== 'token.object').sort()) {
      into[`${item}: object ${file}`] = `sha256=${createHash('sha256').update(readFileSync(join(folder, file))).digest('hex')}`;
    }
  } catch (err) {
    into[item] = `${NOT_READ}${(err as Error).message}`;
  }
}

/** `git status` of the repository, each path with its content: a test must not write into the repository. */
async function repositoryEntries(repoRoot: string, into: Entries): Promise<void> {
  let out: string;
  try {
    out = execFileSync('git', ['-C', repoRoot, 'status', '--porcelain=v1', '-z', '--untracked-files=all'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    into[`repository ${repoRoot}`] = `${NOT_READ}${(err as Error).message.split('\n')[0]}`;
    return;
  }
  const fields = out.split('\0');
  for (let i = 0; i < fields.length; i++) {
    const entry = fields[i]!;
    if (entry.length < 4) continue;
    const [code, path] = [entry.slice(0, 2), entry.slice(3)];
    // A rename or copy names its source in the next field.
    if (code.includes('R') || code.includes('C')) i++;
    const full = join(repoRoot, path);
    const stat = existsSync(full) ? lstatSync(full) : undefined;
    into[`repository file ${path}`] = `${code} ${stat?.isFile() ? `sha256=${await sha256Of(full)}` : stat ? 'present' : 'deleted'}`;
  }
}

export async function installationFingerprint(config: FleetConfig): Promise<Fingerprint> {
  const entries: Entries = {};
  await folderEntries(config.stateDir, config.stateDir, entries);
  if (config.deploymentDir !== config.stateDir) await folderEntries(config.deploymentDir, config.deploymentDir, entries);
  await databaseEntries(config, entries);
  for (const site of [config.sites.a, config.sites.b]) tokenEntries(site.softhsmConf, site.hsmTokenLabel, `site ${site.id} HSM`, entries);
  tokenEntries(config.rootHsm.softhsmConf, config.rootTokenLabel, 'offline root HSM', entries);
  await repositoryEntries(config.repoRoot, entries);
  return entries;
}

const [command, file] = process.argv.slice(2);
if (!file || (command !== 'record' && command !== 'check')) {
  console.error('usage: installation-guard.ts record|check <file>');
  process.exit(2);
}
const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
const now = await installationFingerprint(config);
if (command === 'record') {
  writeFileSync(file, JSON.stringify(now));
} else {
  const before = JSON.parse(readFileSync(file, 'utf8')) as Fingerprint;
  const { changes, notCompared } = compareFingerprints(before, now);
  const what = `${config.stateDir}${config.deploymentDir !== config.stateDir ? ` and ${config.deploymentDir}` : ''}, database ${config.pgDatabase}, tokens ${config.hsmTokenPrefix}-a|b|root, the files of ${config.repoRoot}`;
  if (notCompared.length) console.error(`installation guard: not compared (unreadable before or after): ${notCompared.join('; ')}`);
  if (changes.length) {
    console.error(`installation guard: the run changed the installation (${what}):`);
    for (const line of describeChanges(changes)) console.error(`  ${line}`);
    console.error('Tests write only into their own deployment (FLEETPKI_DEPLOYMENT_DIR) and temporary folders. Anything else working on this installation during the run shows here too.');
    process.exit(1);
  }
  console.log(`installation guard: unchanged (${Object.keys(now).length} things compared: ${what})`);
}
