import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type EtcdMemberName, type FleetConfig, type SiteId } from '@fleetpki/core';
import { removeNetns, sitesDown, startService } from '@fleetpki/sites';
import { writeSecret } from './postgres-tls.js';

/**
 * The installed layout on three "hosts" (issue 34): site A, site B and the witness each in a network
 * namespace of their own (fpinst-a, -b, -witness on 10.78.0.0/24, veths fpi-*: apart from
 * test/partition.test.ts's fleetpki-* on 10.77.0.0/24, which another checkout may be running), every
 * fleetpki program run from an installation (paths.programs: `node services/NAME/dist/main.js`), each
 * host with its own fleetpki.yaml that differs from the others only in `this:`, and every link
 * authenticated and encrypted: etcd with client certificates, PostgreSQL scram over TLS (clients and
 * replication), Redis ACL users over TLS, HTTPS for the API and the status responders.
 */
export const HOSTS: Readonly<Record<EtcdMemberName, string>> = { a: '10.78.0.1', b: '10.78.0.2', witness: '10.78.0.3' };
export const SIMULATION = { netns: true, namespacePrefix: 'fpinst', subnet: '10.78.0.0/24', linkPrefix: 'fpi' } as const;
/** The parts each host serves, with the internal pair `fleetpki tls internal issue` makes for it. */
export const TLS_PARTS = ['api', 'status', 'postgres', 'redis', 'etcd', 'etcdPeer', 'etcdClient'] as const;
const PG_ROLES = ['owner', 'issuer', 'worker', 'status', 'operator'] as const;

export interface InstalledHosts {
  /** Everything of this deployment lives here (state, deployment files, secrets, TLS, host files). */
  readonly dir: string;
  readonly install: string;
  readonly tlsDir: string;
  /** Each host's own configuration file. */
  readonly files: Readonly<Record<EtcdMemberName, string>>;
  /** The document every host's file holds but `this:` (for variants: a wrong password, a wrong bundle). */
  readonly doc: Record<string, unknown>;
}

/** The deployment's document, `this:` apart. JSON is YAML: the files need no YAML writer. */
function deploymentDoc(dir: string, install: string, tlsDir: string, secrets: { postgres: Record<string, string>; redis: string }, withTls: boolean): Record<string, unknown> {
  const pair = (part: string) => ({ cert: join(tlsDir, `${part}.pem`), key: join(tlsDir, `${part}.key`) });
  const site = (id: SiteId) => ({ host: HOSTS[id], postgres: { port: 5432 }, redis: { port: 6379 }, api: { port: 8443 }, status: { port: 9443 } });
  const member = (name: EtcdMemberName) => ({ clientUrl: `https://${HOSTS[name]}:2379`, peerUrl: `https://${HOSTS[name]}:2380` });
  return {
    paths: { state: join(dir, 'state'), deployment: join(dir, 'deployment'), programs: install },
    database: { name: 'fleetpki' },
    simulation: SIMULATION,
    sites: { a: site('a'), b: site('b') },
    etcd: { members: { a: member('a'), b: member('b'), witness: member('witness') }, credentialsDir: join(dir, 'state', 'etcd-credentials') },
    hsm: { tokenPrefix: 'fpinst' },
    log: { level: 'warn' },
    ...(withTls
      ? {
          secrets,
          tls: { caBundle: join(tlsDir, 'ca.pem'), ...Object.fromEntries(TLS_PARTS.map((p) => [p, pair(p)])) },
        }
      : {}),
  };
}

export function writeHostFile(path: string, doc: Record<string, unknown>, member: EtcdMemberName): string {
  writeFileSync(path, JSON.stringify({ this: { site: member }, ...doc }, null, 2));
  return path;
}

/** Lays out the folder and the three host files (the TLS material is the caller's: tlsDir). */
export function layOut(dir: string, install: string): InstalledHosts {
  // The clusters run as the postgres OS user, which must traverse the folder.
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const secretsDir = join(dir, 'secrets');
  mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  const postgres = Object.fromEntries(PG_ROLES.map((r) => [r, writeSecret(secretsDir, `pg-${r}`, randomBytes(18).toString('base64url'))]));
  const redis = writeSecret(secretsDir, 'redis', randomBytes(18).toString('base64url'));
  const tlsDir = join(dir, 'tls');
  const doc = deploymentDoc(dir, install, tlsDir, { postgres, redis }, true);
  const hostsDir = join(dir, 'hosts');
  mkdirSync(hostsDir, { recursive: true });
  const files = Object.fromEntries((['a', 'b', 'witness'] as const).map((m) => [m, writeHostFile(join(hostsDir, `${m}.yaml`), doc, m)])) as Record<EtcdMemberName, string>;
  return { dir, install, tlsDir, files, doc };
}

/** The configuration host `member`'s programs load: its file alone, nothing from this process's environment. */
export function hostConfig(h: InstalledHosts, member: EtcdMemberName): FleetConfig {
  return loadConfig({ FLEETPKI_CONFIG: h.files[member] });
}

/**
 * Stops whatever a run left in `dir` (also a killed one's: its pid files are there) and removes the
 * namespaces, links and the folder. The configuration for it needs no TLS material (it may be gone).
 */
export async function tearDown(dir: string, install: string): Promise<void> {
  let config: FleetConfig;
  if (existsSync(dir)) {
    const bare = join(dir, 'teardown.yaml');
    writeHostFile(bare, deploymentDoc(dir, install, join(dir, 'tls'), { postgres: {}, redis: '' }, false), 'a');
    config = loadConfig({ FLEETPKI_CONFIG: bare });
    await sitesDown(config).catch(() => undefined);
  } else {
    const temp = writeTemp(install);
    config = loadConfig({ FLEETPKI_CONFIG: temp });
    rmSync(temp, { force: true });
  }
  // Whatever still runs in our namespaces is ours (a killed run's services, which name no state folder
  // on their command line): a namespace with a process in it outlives `ip netns del`.
  for (const ns of Object.values(config.simulation.namespaces)) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split('\n').map(Number).filter((p) => p > 0 && p !== process.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  removeNetns(config.simulation);
  rmSync(dir, { recursive: true, force: true });
}

function writeTemp(install: string): string {
  const file = join(tmpdir(), `fpinst-teardown-${process.pid}.yaml`);
  writeHostFile(file, { simulation: SIMULATION, paths: { programs: install } }, 'a');
  return file;
}

/** A fleetpki service of `site` in its namespace, from the installation, reading its host's file. */
export function startInstalled(h: InstalledHosts, config: FleetConfig, name: string, site: SiteId, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return startService(config, name, { FLEETPKI_SITE: site, FLEETPKI_CONFIG: h.files[site], ...env });
}

export interface Exit {
  readonly code: number | null;
  readonly output: string;
}

/**
 * Starts a service of site A from the installation with another file (a variant of A's) and waits for
 * it to stop: a refusal at start is an exit with its code in the output. One still running after
 * `timeoutMs` is stopped and reported as such (code null).
 */
export function startAndWaitForExit(h: InstalledHosts, name: string, file: string, timeoutMs = 60_000): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', `${SIMULATION.namespacePrefix}-a`, process.execPath, join(h.install, 'services', name, 'dist', 'main.js')], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, FLEETPKI_CONFIG: file, FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The installed CLI as an operator on `member`'s host runs it (this machine's namespace: the CLI reaches every host). */
export function installedCli(install: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<Exit & { stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(install, 'services', 'cli', 'dist', 'main.js'), ...args], { cwd: install, env: { PATH: process.env.PATH, HOME: process.env.HOME, FLEETPKI_LOG_LEVEL: 'warn', ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}`, stdout, stderr }),
    );
  });
}
