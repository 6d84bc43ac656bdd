import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DrillStartMessage, entryPoint, FleetError, type FleetConfig, moduleNodeFlags } from '@fleetpki/core';

/** How long a drill process may take to start and answer whether it holds the drill lock. */
const START_TIMEOUT_MS = 60_000;

export interface DrillLaunch {
  readonly pid: number;
  readonly log: string;
}

/**
 * Starts `fleetpki drill failover` as a process of its own (the drill kills the active site's database
 * and services, so it must not run inside the API it is killing), on a test deployment only, and waits
 * until it says whether it runs: one drill at a time is the drill's own lock in etcd (drills
 * one-drill-at-a-time.ts, the same for the CLI), so a drill already running makes this one refuse at
 * once, and that refusal (409 DRILL_RUNNING) is this call's answer. Its output goes to a log file; its
 * figures land in drill_runs when it ends, where the console's drills page shows them. Who may start it
 * (two administrators) is the caller's to check.
 */
export async function launchFailoverDrill(config: FleetConfig, options: { devices: number; startedBy: string }, cliMain?: string): Promise<DrillLaunch> {
  if (!config.console.drills) {
    throw new FleetError('DRILLS_DISABLED', 'drills start from the API only on a test deployment (FLEETPKI_CONSOLE_DRILLS=on); elsewhere run `pnpm fleetpki drill failover` where the sites are', { httpStatus: 403 });
  }
  // The CLI as this deployment runs its programs (entryPoint); a test passes a stand-in file.
  const cli = cliMain === undefined ? entryPoint(config.programsDir, 'cli') : [...moduleNodeFlags(cliMain), cliMain];
  const dir = join(config.deploymentDir, 'drill');
  mkdirSync(dir, { recursive: true });
  const log = join(dir, `console-failover-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}.log`);
  const out = openSync(log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...cli, 'drill', 'failover', '--devices', String(options.devices), '--started-by', options.startedBy], {
      cwd: config.repoRoot,
      detached: true,
      // The fourth is the IPC channel the drill answers on (started, or refused and why).
      stdio: ['ignore', out, out, 'ipc'],
      env: process.env,
    });
  } finally {
    closeSync(out);
  }
  child.unref();
  const answer = await firstAnswer(child, log);
  if (answer.drill === 'refused') {
    const status = answer.httpStatus >= 400 && answer.httpStatus < 600 ? answer.httpStatus : 500;
    throw new FleetError(/^[A-Z][A-Z_]+$/.test(answer.code) ? answer.code : 'DRILL_START_FAILED', answer.message, { httpStatus: status });
  }
  return { pid: answer.pid, log };
}

/** The drill's first word on its IPC channel; its end, an error or silence first is a failed start. */
function firstAnswer(child: ChildProcess, log: string): Promise<DrillStartMessage> {
  return new Promise((resolve, reject) => {
    const failed = (why: string) => new FleetError('DRILL_START_FAILED', `the drill process ${why}; its log: ${log}${tail(log)}`, { httpStatus: 500 });
    const settle = (done: () => void) => {
      clearTimeout(timer);
      child.removeAllListeners('message').removeAllListeners('exit').removeAllListeners('error');
      if (child.connected) child.disconnect();
      done();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(() => reject(failed(`said nothing within ${START_TIMEOUT_MS / 1000} s and was killed`)));
    }, START_TIMEOUT_MS);
    child.once('message', (message: DrillStartMessage) => settle(() => resolve(message)));
    child.once('exit', (code, signal) => settle(() => reject(failed(`ended (${signal ?? `exit code ${code}`}) before it said whether it runs`))));
    child.once('error', (err) => settle(() => reject(failed(`could not start: ${err.message}`))));
  });
}

function tail(log: string): string {
  try {
    const text = readFileSync(log, 'utf8').trim();
    return text ? `; it ends: ${text.slice(-500)}` : '';
  } catch {
    return '';
  }
}
