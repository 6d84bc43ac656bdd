/**
 * pnpm bench startup [--runs N] [--json]
 * Start-up of every fleetpki program from the build (`node services/NAME/dist/main.js`, what an
 * installation runs) and from the sources through tsx (development), N times each, alternating:
 * - issuer-api, status-responder, batch-worker, daemons: time from spawn to ready (runService's ready
 *   message on the IPC channel: configuration read, database, HSM and signing threads open, listening),
 *   and the resident memory then, of the process and its children (tsx keeps an esbuild process);
 * - site-agent: site B's agent (the standby's) restarted, ready as above; the site's own agent is back
 *   when the run ends;
 * - the CLI: `fleetpki --help`, time to exit and its peak memory.
 * Prints the medians per program and runtime and the ratio tsx/compiled. Needs `pnpm build` and a CA
 * on site A (`pnpm fleetpki ceremony init`, or `pnpm demo`); the services run on a throw-away copy of
 * its database (scripts/lib/synthetic-ca.ts), on free ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { freePort } from './lib/free-port.js';
import { parseArgs } from 'node:util';
import { entryPoint, loadConfig, type Runtime } from '@fleetpki/core';
import { ensureAgent, stopAgent, stopProcess } from '@fleetpki/sites';
import { percentile } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { createSyntheticCaDatabase } from './lib/synthetic-ca.js';

// --hsm-seconds is taken as every benchmark takes it (the smoke test passes it to all): start-up time is
// no throughput figure, so no raw HSM rate is measured against it.
const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, json: { type: 'boolean', default: false }, deadline: { type: 'string', default: '900' }, 'hsm-seconds': { type: 'string', default: '0' } } });
const runs = Number(args.runs);
const run = new BenchRun('startup', { deadlineSeconds: Number(args.deadline), json: args.json });
const RUNTIMES: readonly Runtime[] = ['compiled', 'source'];

interface Sample {
  readonly ms: number;
  readonly rssMb: number;
}

/** Resident memory of a process and all its descendants, in MB (from /proc). */
function treeRssMb(root: number): number {
  const parents = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // Field 4 of stat, after the command name in parentheses (which may hold spaces).
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parents.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  let kb = 0;
  for (const pid of tree) {
    try {
      kb += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return Math.round(kb / 1024);
}

/** Starts a program with an IPC channel and waits for its ready message; measures, then stops it. */
async function startToReady(name: string, argv: string[], env: NodeJS.ProcessEnv): Promise<Sample> {
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, argv, { env: { ...process.env, FLEETPKI_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  run.track(child, name);
  try {
    await new Promise<void>((resolve) => child.on('message', (m: { fleetpkiReady?: string }) => m.fleetpkiReady && resolve()));
    const ms = performance.now() - started;
    return { ms, rssMb: treeRssMb(child.pid!) };
  } finally {
    run.untrack(child);
    await stopProcess(child);
  }
}

/** `fleetpki --help` to its exit; its peak memory from GNU time (%M, kB). */
function cliHelp(runtime: Runtime, root: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'maxrss_kb=%M', process.execPath, ...entryPoint(root, 'cli', runtime), '--help'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => {
      const ms = performance.now() - started;
      const kb = Number(/maxrss_kb=(\d+)/.exec(stderr)?.[1]);
      if (code !== 0 || !Number.isFinite(kb)) return reject(new Error(`fleetpki --help (${runtime}) failed (exit ${code}): ${stderr.trim()}`));
      resolve({ ms, rssMb: Math.round(kb / 1024) });
    });
  });
}

await run.main(async () => {
  if (!(Number.isInteger(runs) && runs >= 1)) run.fail('BENCH_ARGUMENT_INVALID', `--runs must be a positive integer (got ${args.runs})`, 2);
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  // Both runtimes must exist before anything starts: a missing build is named at once (entryPoint).
  for (const runtime of RUNTIMES) for (const program of ['issuer-api', 'status-responder', 'batch-worker', 'daemons', 'site-agent', 'cli']) entryPoint(config.repoRoot, program, runtime);

  run.begin('throw-away copy of site A\'s CA database');
  const data = await createSyntheticCaDatabase(config, 0, undefined, (drop) => run.onCleanup(drop));
  const env = { FLEETPKI_SITE: 'a', ...data.env, FLEETPKI_API_PORT_A: String(await freePort()), FLEETPKI_STATUS_PORT_A: String(await freePort()), FLEETPKI_API_WORKERS: '1' };
  const siteB = config.sites.b;
  // Whatever happens, site B's own agent runs again afterwards.
  run.onCleanup(async () => void ensureAgent(config, siteB));

  const programs: Record<string, (runtime: Runtime) => Promise<Sample>> = {
    'issuer-api': (runtime) => startToReady('issuer-api', entryPoint(config.repoRoot, 'issuer-api', runtime), env),
    'status-responder': (runtime) => startToReady('status-responder', entryPoint(config.repoRoot, 'status-responder', runtime), env),
    'batch-worker': (runtime) => startToReady('batch-worker', entryPoint(config.repoRoot, 'batch-worker', runtime), env),
    daemons: (runtime) => startToReady('daemons', entryPoint(config.repoRoot, 'daemons', runtime), env),
    'site-agent': async (runtime) => {
      await stopAgent(siteB);
      return startToReady('site-agent', [...entryPoint(config.repoRoot, 'site-agent', runtime), `--state-dir=${config.stateDir}`], { FLEETPKI_SITE: siteB.id, FLEETPKI_STATE_DIR: config.stateDir });
    },
    'cli --help': (runtime) => cliHelp(runtime, config.repoRoot),
  };

  const samples = new Map<string, Sample[]>();
  for (const [program, start] of Object.entries(programs)) {
    for (let i = 0; i < runs; i++) {
      // Alternating, so a machine that gets busier during the run weighs on both alike.
      for (const runtime of i % 2 === 0 ? RUNTIMES : [...RUNTIMES].reverse()) {
        run.begin(`${program} from ${runtime === 'compiled' ? 'the build' : 'sources (tsx)'}, run ${i + 1}/${runs}`);
        const sample = await start(runtime);
        run.log(`  ${Math.round(sample.ms)} ms, ${sample.rssMb} MB`);
        const key = `${program}/${runtime}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
      }
    }
  }
  ensureAgent(config, siteB);

  const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
  const rows = Object.keys(programs).map((program) => {
    const of = (runtime: Runtime) => samples.get(`${program}/${runtime}`)!;
    const c = { ms: Math.round(median(of('compiled').map((s) => s.ms))), rssMb: median(of('compiled').map((s) => s.rssMb)) };
    const s = { ms: Math.round(median(of('source').map((x) => x.ms))), rssMb: median(of('source').map((x) => x.rssMb)) };
    return { program, compiled_ms: c.ms, tsx_ms: s.ms, time_ratio: Number((s.ms / c.ms).toFixed(2)), compiled_rss_mb: c.rssMb, tsx_rss_mb: s.rssMb };
  });
  run.log('');
  run.log(`| program | ready, compiled | ready, tsx | tsx / compiled | RSS compiled | RSS tsx |  (median of ${runs})`);
  run.log('|---|---|---|---|---|---|');
  for (const r of rows) run.log(`| ${r.program} | ${r.compiled_ms} ms | ${r.tsx_ms} ms | ${r.time_ratio} | ${r.compiled_rss_mb} MB | ${r.tsx_rss_mb} MB |`);
  return { runs, node: process.version, programs: rows };
});
