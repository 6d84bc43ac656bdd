import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { entryPoint, programEnvironment, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { inNetns } from './exec.js';
import { hostOwnFile, writeDeploymentFile } from './deployment-file.js';
import { livePid, removePidFile, writePidFile } from './pid-file.js';

/** The site agent runs as a daemon beside its site's PostgreSQL: a pid file and a log in the site folder. */
function pidFile(site: SiteConfig): string {
  return join(site.dir, 'agent.pid');
}

export function agentLogFile(site: SiteConfig): string {
  return join(site.dir, 'agent.log');
}

export function agentPid(site: SiteConfig): number | undefined {
  return livePid(pidFile(site));
}

/**
 * Starts the site's agent (a no-op when it runs). It reads `configFile` when given (its host's own
 * file, as on a real host), else the file `sites up` generates for the whole simulation.
 */
export function ensureAgent(config: FleetConfig, site: SiteConfig, configFile?: string): 'started' | 'running' {
  if (agentPid(site) !== undefined) return 'running';
  mkdirSync(site.dir, { recursive: true });
  const log = openSync(agentLogFile(site), 'a');
  // The state folder on the command line marks it as ours (sitesDown's sweep of leftovers finds it).
  const [file, args] = inNetns(site.netns, process.execPath, [...entryPoint(config.programsDir, 'site-agent'), `--state-dir=${config.stateDir}`]);
  const child = spawn(file, args, {
    cwd: config.repoRoot,
    env: { ...programEnvironment(), FLEETPKI_CONFIG: configFile ?? hostOwnFile(config) ?? writeDeploymentFile(config).path, FLEETPKI_SITE: site.id, FLEETPKI_STATE_DIR: config.stateDir },
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  child.unref();
  writePidFile(pidFile(site), child.pid);
  return 'started';
}

export async function stopAgent(site: SiteConfig, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const pid = agentPid(site);
  if (pid === undefined) return;
  process.kill(pid, signal);
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      removePidFile(pidFile(site));
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill(pid, 'SIGKILL');
  removePidFile(pidFile(site));
}
