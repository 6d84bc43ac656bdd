import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteConfig } from '@fleetpki/core';
import { pgDataDir, redisPid } from '@fleetpki/sites';

/**
 * CPU time of the processes a benchmark drives, from /proc, so its cost shows apart from the noise of a
 * shared machine: core-microseconds per certificate, split by process.
 *
 * A PostgreSQL cluster is its postmaster plus backends that come and go: the postmaster's time counts
 * its children once they exit (cutime, cstime), and the live ones are read one by one, so a backend
 * that ends mid-measurement is counted once either way. Node processes are counted with every thread.
 */
export class CpuMeter {
  private readonly tick = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  private start: Map<string, number> | undefined;

  constructor(private readonly groups: () => Record<string, Pid[]>) {}

  /** The processes of a site's PostgreSQL and Redis, named `<what> <site>`. */
  static siteProcesses(site: SiteConfig, role: 'primary' | 'standby'): Record<string, Pid[]> {
    const postmaster = postmasterPid(site);
    const redis = redisPid(site);
    return {
      [`postgres ${site.id} (${role})`]: postmaster ? [{ pid: postmaster, withChildren: true }] : [],
      ...(role === 'primary' ? { [`redis ${site.id}`]: redis ? [{ pid: redis, withChildren: false }] : [] } : {}),
    };
  }

  begin(): void {
    this.start = this.read();
  }

  /** Core-microseconds used by each group since begin(). */
  end(): Record<string, number> {
    if (!this.start) throw new Error('CpuMeter.end() before begin()');
    const now = this.read();
    const out: Record<string, number> = {};
    for (const [group, us] of now) out[group] = Math.max(0, us - (this.start.get(group) ?? 0));
    return out;
  }

  private read(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [group, pids] of Object.entries(this.groups())) {
      let ticks = 0;
      for (const p of pids) ticks += p.withChildren ? treeTicks(p.pid) : ownTicks(p.pid);
      out.set(group, ticks * this.tick);
    }
    return out;
  }
}

export interface Pid {
  readonly pid: number;
  /** Count its children too: the exited ones through its cutime/cstime, the live ones one by one. */
  readonly withChildren: boolean;
}

/** Per certificate, rounded, and the total: what a benchmark prints. */
export function cpuPerCertificate(used: Record<string, number>, certificates: number): { total_core_us_per_certificate: number; by_process: Record<string, number> } {
  const by = Object.fromEntries(Object.entries(used).map(([k, us]) => [k, Math.round(us / certificates)]));
  return { total_core_us_per_certificate: Math.round(Object.values(used).reduce((a, b) => a + b, 0) / certificates), by_process: by };
}

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime (fields 14, 15 of /proc/PID/stat; index 11, 12 after the name). */
function ownTicks(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[11]) + Number(f[12]) : 0;
}

function treeTicks(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  for (const child of childrenOf(pid)) ticks += ownTicks(child);
  return ticks;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`, { withFileTypes: false }).map(String)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // a thread that ended while being read
    }
  }
  return out;
}

function postmasterPid(site: SiteConfig): number | undefined {
  try {
    return Number(readFileSync(join(pgDataDir(site), 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}
