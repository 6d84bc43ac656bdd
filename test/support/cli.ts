import { execFile } from 'node:child_process';
import { entryPoint, findRepoRoot, programEnvironment } from '@fleetpki/core';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `fleetpki ...` as an operator would, in its own process (one process per site's HSM). Killed
 * after `timeoutMs` (a drill of 20,000 devices takes ~95 s on 2 cores, more when the machine is shared).
 */
export function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliResult> {
  const root = findRepoRoot();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...entryPoint(root, 'cli'), ...args],
      { env: { ...programEnvironment(), FLEETPKI_LOG_LEVEL: 'warn', ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The last line of a command run with --json (a drill's report, a new backup): one JSON object. */
export function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}
