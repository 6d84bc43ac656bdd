import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError } from '@fleetpki/core';

export interface RunOptions {
  /** Run as the unprivileged PostgreSQL owner (initdb and postgres refuse to run as root). */
  readonly asPgUser?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  /** Resolve with stderr appended to stdout (tools that report progress on stderr). */
  readonly stderrToo?: boolean;
  /** Run inside this network namespace (a site's host, FLEETPKI_NETNS=on). */
  readonly netns?: string | undefined;
}

/** `cmd args` as run inside network namespace `netns` (`ip netns exec` execs it: same pid), or as is. */
export function inNetns(netns: string | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, [...args]];
}

export const isRoot = process.getuid?.() === 0;
/** The Debian postgresql package creates this system user; we run our clusters under it when root. */
export const PG_OS_USER = 'postgres';

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const [file, argv] = inNetns(options.netns, ...(options.asPgUser && isRoot ? (['runuser', ['-u', PG_OS_USER, '--', cmd, ...args]] as const) : ([cmd, args] as const)));
  return new Promise((resolve, reject) => {
    execFile(file, argv, { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new FleetError('SITES_COMMAND_FAILED', `${cmd} ${args.join(' ')} failed: ${(stderr || err.message).trim().slice(-2000)}`, { cause: err }));
      } else resolve(options.stderrToo ? `${stdout}${stderr}` : stdout);
    });
  });
}

/** True when the PostgreSQL OS user can reach `dir` (a clone under /root, mode 700, it cannot). */
export function pgUserCanTraverse(dir: string): boolean {
  if (!isRoot) return true;
  return spawnSync('runuser', ['-u', PG_OS_USER, '--', 'test', '-x', dir]).status === 0;
}

/** PostgreSQL server binaries: FLEETPKI_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin (Debian). */
export function pgBinDir(): string {
  const fromEnv = process.env.FLEETPKI_PG_BINDIR;
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).map(Number).sort((a, b) => b - a) : [];
  for (const v of versions) {
    const bin = join(root, String(v), 'bin');
    if (existsSync(join(bin, 'initdb'))) return bin;
  }
  throw new FleetError('SITES_PREREQUISITE_MISSING', 'PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/setup.sh, or set FLEETPKI_PG_BINDIR)');
}
