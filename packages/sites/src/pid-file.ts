import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

/**
 * The pid files of the daemons `sites up` starts (site agents, etcd members, Redis): one place that
 * reads, writes and removes them. A pid is believed only while a process with it is alive.
 */
export function livePid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

export function writePidFile(file: string, pid: number | undefined): void {
  writeFileSync(file, `${pid}\n`);
}

export function removePidFile(file: string): void {
  rmSync(file, { force: true });
}
