// A backup restored beside the sites, never over them: pgBackRest restores the repository's backup into a
// scratch data directory, PostgreSQL replays archived WAL up to the target and promotes, and the caller
// reads what came back. Archiving is off there, so the scratch cluster's new timeline never reaches the
// repository the real sites archive to.
import { chownSync, existsSync, mkdirSync, rmSync, statfsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { isRoot, pgBinDir, run } from './exec.js';
import { osUserIds } from './os-user.js';
import { repositoryInfo } from './backups.js';
import { archiveUpToNow } from './wal-archive.js';
import { pgbackrest } from './pgbackrest.js';
import { pgDataDir, postmasterAlive } from './postmaster.js';
import { startRestoredCluster } from './restored-cluster.js';
import { currentRoles } from './topology-file.js';

export interface ScratchCluster {
  /** The primary's site with the scratch cluster's port and folder: what ownerPool and pgLinkSecurity need to reach it. */
  readonly site: SiteConfig;
  /** pgbackrest restore (files out of the repository), then PostgreSQL's replay up to the target and promotion. */
  readonly restoreSeconds: number;
  readonly recoverySeconds: number;
  /** Stops the scratch cluster and removes its folder. */
  remove(): Promise<void>;
}

/** pgBackRest's --target format (PostgreSQL parses it too): UTC, milliseconds. */
export function recoveryTargetTime(at: Date): string {
  return `${at.toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

/**
 * Refuses a restore the scratch volume has no room for (the newest backup's cluster size and a tenth
 * more): a full copy of the database that filled the live cluster's disk would stop the CA.
 */
function checkRoom(dir: string, clusterBytes: number): void {
  let probe = dir;
  while (!existsSync(probe)) probe = dirname(probe);
  const fs = statfsSync(probe);
  const free = fs.bavail * fs.bsize;
  const needed = Math.ceil(clusterBytes * 1.1);
  if (free < needed) throw new FleetError('RESTORE_NO_ROOM', `the restore needs about ${Math.ceil(needed / 1048576)} MB in ${dir} (backup.scratch), and ${Math.floor(free / 1048576)} MB are free there`);
}

/** A port nobody listens on now (the kernel's choice): the scratch cluster lives for one drill. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function stopScratch(site: SiteConfig): Promise<void> {
  if (!postmasterAlive(site)) return;
  await run(join(pgBinDir(), 'pg_ctl'), ['stop', '-D', pgDataDir(site), '-m', 'immediate', '-w', '-t', '60'], { asPgUser: true }).catch(() => undefined);
}

/**
 * Restores the repository into a scratch cluster: to `target` (the state of every transaction committed
 * by then; the primary's WAL is archived up to now first), or with no target to the end of the archive. A scratch cluster left by an interrupted drill
 * is removed first.
 */
export async function restoreToScratch(config: FleetConfig, options: { target?: Date; log?: (line: string) => void } = {}): Promise<ScratchCluster> {
  const log = options.log ?? (() => undefined);
  const { primary } = currentRoles(config);
  const dir = config.backup.scratch;
  const site: SiteConfig = { ...primary, dir, pgPort: await freePort() };
  await stopScratch(site);
  rmSync(dir, { recursive: true, force: true });
  const newest = (await repositoryInfo(config)).backups.at(-1);
  checkRoom(dir, newest?.databaseBytes ?? 0);
  mkdirSync(pgDataDir(site), { recursive: true, mode: 0o700 });
  if (isRoot) {
    const { uid, gid } = osUserIds('postgres');
    for (const d of [dir, pgDataDir(site)]) chownSync(d, uid, gid);
  }
  const remove = async () => {
    await stopScratch(site);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Replay to T needs the WAL up to T in the repository, and a commit after T in it to stop at.
    if (options.target) await archiveUpToNow(config);
    const target = options.target ? ['--type=time', `--target=${recoveryTargetTime(options.target)}`, '--target-action=promote'] : [];
    let started = Date.now();
    log(`restoring the repository into ${pgDataDir(site)}${options.target ? ` as of ${options.target.toISOString()}` : ' (to the end of the archive)'}`);
    // --archive-mode=off: pgBackRest writes it into the restored settings, so even a scratch cluster
    // started by hand later never pushes its own timeline into the repository the sites archive to.
    await pgbackrest(config, primary, 'restore', { args: [`--pg1-path=${pgDataDir(site)}`, '--archive-mode=off', ...target], timeoutMs: 6 * 3_600_000 });
    const restoreSeconds = (Date.now() - started) / 1000;
    started = Date.now();
    const logFile = join(dir, 'postgresql.log');
    // The restored settings are the primary's; these override them for a cluster nobody else may see:
    // its own port, no archiving, no synchronous standby.
    const overrides: string[] = [
      `-c port=${site.pgPort}`,
      `-c listen_addresses=${site.host}`,
      `-c archive_mode=off`,
      `-c synchronous_standby_names=''`,
      `-c cluster_name=fleetpki-restore-drill`,
      `-c shared_buffers=128MB`,
    ];
    await startRestoredCluster(config, site, { logFile, overrides, what: `the restored cluster${options.target ? ` (to ${options.target.toISOString()})` : ''}` });
    return { site, restoreSeconds, recoverySeconds: (Date.now() - started) / 1000, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
