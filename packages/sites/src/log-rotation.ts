import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { FleetError, SITE_IDS, type FleetConfig } from '@fleetpki/core';
import { etcdLogFile } from './etcd-cluster.js';
import { agentLogFile } from './site-agent-process.js';

const run = promisify(execFile);

/** Where `sites logs rotate` keeps its configuration and logrotate's state (when each file was last rotated). */
export function logRotationFiles(config: FleetConfig): { conf: string; state: string } {
  return { conf: join(config.stateDir, 'logrotate.conf'), state: join(config.stateDir, 'logrotate.state') };
}

/**
 * logrotate's configuration for the files the local simulation writes: the agents', etcd's, Redis's,
 * Patroni's, PostgreSQL's, pgBackRest's and the local Prometheus's logs. copytruncate: every writer keeps its file open (an agent's stdout,
 * a postmaster's log collector-less stderr), so the file is copied and emptied in place rather than
 * renamed under it. A file owned by postgres is rotated as postgres (`su`), as logrotate requires for
 * a directory only that user may write. In production the units log to the journal, which journald
 * rotates (infra/systemd); this is for the simulation's files.
 */
export function logRotationConfig(config: FleetConfig, options: { maxSize?: string; keep?: number } = {}): string {
  const common = [`  size ${options.maxSize ?? '50M'}`, `  rotate ${options.keep ?? 7}`, '  copytruncate', '  compress', '  delaycompress', '  missingok', '  notifempty'];
  const block = (paths: readonly string[], su?: string) => [`${paths.join(' ')} {`, ...common, ...(su ? [`  su ${su} ${su}`] : []), '}', ''].join('\n');
  const rootFiles: string[] = [];
  const postgresFiles: string[] = [];
  for (const id of SITE_IDS) {
    const site = config.sites[id];
    rootFiles.push(agentLogFile(site), join(site.dir, 'redis', '*.log'), join(site.dir, 'patroni.log'));
    postgresFiles.push(join(site.dir, 'pg-log', '*.log'), join(site.dir, 'pgbackrest', 'log', '*.log'));
  }
  for (const member of config.consensus.members) rootFiles.push(etcdLogFile(member));
  rootFiles.push(join(config.stateDir, 'prometheus', 'prometheus.log'));
  for (const path of [...rootFiles, ...postgresFiles]) {
    // logrotate's configuration is line-based and a space separates paths: refuse what would break it.
    if (!/^\/[A-Za-z0-9/._*-]+$/.test(path)) throw new FleetError('CONFIG_INVALID', `invalid configuration: the log file path "${path}" must be an absolute path of letters, digits and / . _ - only (logrotate's configuration names it)`);
  }
  return ['# Written by fleetpki sites logs rotate; edits are overwritten.', block(rootFiles), block(postgresFiles, process.getuid?.() === 0 ? 'postgres' : undefined)].join('\n');
}

/** Rotates the simulation's logs that are over their size (all of them with `force`); returns logrotate's verbose report. */
export async function rotateLogs(config: FleetConfig, options: { force?: boolean } = {}): Promise<string> {
  const { conf, state } = logRotationFiles(config);
  mkdirSync(dirname(conf), { recursive: true });
  // logrotate refuses a configuration others may write.
  writeFileSync(conf, logRotationConfig(config), { mode: 0o644 });
  try {
    const { stdout, stderr } = await run('logrotate', ['-v', '-s', state, ...(options.force ? ['-f'] : []), conf], { timeout: 120_000 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new FleetError('LOGROTATE_MISSING', 'logrotate is not installed: run scripts/setup.sh (Debian package logrotate)');
    throw new FleetError('LOGROTATE_FAILED', `logrotate failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-5).join('; ')}`);
  }
}
