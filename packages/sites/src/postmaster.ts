// Whether a cluster's postmaster lives, read from its lock file and /proc (no subprocess: see below).
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteConfig } from '@fleetpki/core';

export function pgDataDir(site: SiteConfig): string {
  return join(site.dir, 'pg');
}

/**
 * Is the cluster's postmaster alive? Read from postmaster.pid and /proc, in-process: a `pg_ctl status`
 * subprocess under load once said "not running" of a live primary, and the site agent resigned for it.
 * A zombie (killed, not yet reaped by a PID 1 that does not reap) counts as dead.
 */
export function postmasterAlive(site: SiteConfig): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(pgDataDir(site), 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "<pid> (<comm>) <state> ...": comm is "postgres" for the postmaster; pid reuse by another program is not alive.
    const m = /^\d+ \((.*)\) (\S)/.exec(stat);
    return m !== null && m[1] === 'postgres' && m[2] !== 'Z' && m[2] !== 'X';
  } catch {
    return false;
  }
}

/**
 * After a SIGKILL the postmaster's pid stays taken until its parent reaps it, and PostgreSQL refuses to
 * start over a lock file whose pid exists ("another postmaster running"). Waits for it to go; one that
 * stays a zombie holds nothing (its shared memory, which PostgreSQL also checks, protects against live
 * backends), so its lock file is removed.
 */
export async function waitForPostmasterExit(site: SiteConfig, log: (line: string) => void): Promise<void> {
  const lockFile = join(pgDataDir(site), 'postmaster.pid');
  let pid: number;
  try {
    pid = Number(readFileSync(lockFile, 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  const exists = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  for (let i = 0; i < 100 && exists(); i++) {
    if (postmasterAlive(site)) return; // running for real: the caller's stop handles it
    await new Promise((r) => setTimeout(r, 100));
  }
  if (exists() && !postmasterAlive(site)) {
    log(`site ${site.id}: the killed postmaster (pid ${pid}) was not reaped; removing its lock file`);
    rmSync(lockFile, { force: true });
  }
}
