import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig } from '@fleetpki/core';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `fleetpki drill failover` as a process of its own (the drill kills the active site's database
 * and services, so it must not run inside the API it is killing), on a test deployment only. One drill
 * at a time: the pid file in the deployment's folder says whether one runs. Its output goes to a log file; its
 * figures land in drill_runs when it ends, where the console's drills page shows them.
 */
export function launchFailoverDrill(config: FleetConfig, devices: number, cliMain = join(config.repoRoot, 'services', 'cli', 'src', 'main.ts')): { pid: number; log: string } {
  if (!config.console.drills) {
    throw new FleetError('DRILLS_DISABLED', 'drills start from the API only on a test deployment (FLEETPKI_CONSOLE_DRILLS=on); elsewhere run `pnpm fleetpki drill failover` where the sites are', { httpStatus: 403 });
  }
  const dir = join(config.deploymentDir, 'drill');
  mkdirSync(dir, { recursive: true });
  const pidFile = join(dir, 'console-drill.pid');
  if (existsSync(pidFile)) {
    const running = Number(readFileSync(pidFile, 'utf8'));
    if (running > 0 && alive(running)) throw new FleetError('DRILL_RUNNING', `a drill started from the console runs already (pid ${running})`, { httpStatus: 409 });
  }
  const log = join(dir, `console-failover-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  const out = openSync(log, 'a');
  try {
    const child = spawn(process.execPath, ['--conditions=fleetpki-source', '--import', 'tsx', cliMain, 'drill', 'failover', '--devices', String(devices)], {
      cwd: config.repoRoot,
      detached: true,
      stdio: ['ignore', out, out],
      env: process.env,
    });
    if (child.pid === undefined) throw new FleetError('DRILL_START_FAILED', 'the drill process did not start', { httpStatus: 500 });
    child.unref();
    writeFileSync(pidFile, String(child.pid));
    return { pid: child.pid, log };
  } finally {
    closeSync(out);
  }
}
