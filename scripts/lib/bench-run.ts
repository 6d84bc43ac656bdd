import { spawnSync, type ChildProcess } from 'node:child_process';

/**
 * The life of one benchmark run, so that none can hang or fail silently:
 * - an overall deadline (`--deadline` seconds); when it passes the run says which step it was in and
 *   how far that step got, kills the service processes it started, runs its clean-ups (bounded), prints
 *   a `{"benchmark", "error": "BENCH_DEADLINE", ...}` line and exits 3;
 * - every wait names what it waits for and reports progress; a wait whose progress stops changing for
 *   `stallSeconds` fails at once with that message (exit 4) instead of using up the whole deadline;
 * - a service process that exits while the run still needs it fails the run at once (exit 5);
 * - any other error prints `{"benchmark", "error": code, "message"}` and exits 1.
 * With --json the last line of stdout is always one JSON object: the figures, or the error.
 */
export class BenchRun {
  private step = 'starting';
  private progress = '';
  private readonly children = new Set<{ child: ChildProcess; name: string }>();
  private readonly cleanups: (() => Promise<void>)[] = [];
  private finished = false;
  readonly startedAt = performance.now();

  constructor(
    readonly name: string,
    readonly options: { deadlineSeconds: number; json: boolean },
  ) {
    if (!Number.isFinite(options.deadlineSeconds) || options.deadlineSeconds <= 0) this.abort('BENCH_ARGUMENT_INVALID', `--deadline must be a positive number of seconds`, 2);
    // Not unref'd: a run waiting on something that never settles must still end here.
    this.deadline = setTimeout(() => this.abort('BENCH_DEADLINE', `deadline of ${options.deadlineSeconds} s passed during "${this.step}"${this.progress ? ` (got as far as: ${this.progress})` : ''}`, 3), options.deadlineSeconds * 1000);
    const onError = (err: unknown) => {
      if (!(err instanceof BenchAborted)) this.abort(codeOf(err), messageOf(err), 1);
    };
    process.on('unhandledRejection', onError);
    process.on('uncaughtException', onError);
    // Stopped from outside (Ctrl-C, kill, a CI timeout): the services it started and its throw-away
    // database go too, as on any other failure; without this they outlived the run and held its ports.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => this.abort('BENCH_INTERRUPTED', `stopped by ${signal} during "${this.step}"`, 130));
  }

  private readonly deadline: NodeJS.Timeout;

  /** A line for people (stdout without --json, stderr with it, so the JSON line stays last and alone). */
  log(line: string): void {
    if (this.options.json) process.stderr.write(`${line}\n`);
    else console.log(line);
  }

  /** Names the step now running; the deadline message names it. */
  begin(step: string): void {
    this.step = step;
    this.progress = '';
    this.log(`${step} ...`);
  }

  /** Seconds since the run started, since `since` (a performance.now() value) when given. */
  seconds(since = this.startedAt): number {
    return Number(((performance.now() - since) / 1000).toFixed(2));
  }

  /** A service process of this run: killed on failure, and a failure itself if it exits early. */
  track(child: ChildProcess, name: string): ChildProcess {
    const entry = { child, name };
    this.children.add(entry);
    child.once('exit', (code, signal) => {
      if (this.children.has(entry) && !this.finished) this.abort('BENCH_SERVICE_EXITED', `${name} exited (${signal ?? `code ${code}`}) during "${this.step}"; its output above says why`, 5);
    });
    return child;
  }

  /** Stops expecting a tracked process (before stopping it on purpose). */
  untrack(child: ChildProcess): void {
    for (const entry of this.children) if (entry.child === child) this.children.delete(entry);
  }

  /** Runs at the end, also after a failure (databases to drop, stores to close), newest first. */
  onCleanup(fn: () => Promise<void>): void {
    this.cleanups.unshift(fn);
  }

  /**
   * Polls `probe` until it says done. Its `progress` is shown every few seconds and named if the
   * deadline passes; unchanged progress for `stallSeconds` fails the run with that message.
   */
  async waitUntil(what: string, probe: () => Promise<{ done: boolean; progress: string }>, options: { intervalMs?: number; stallSeconds?: number } = {}): Promise<void> {
    this.step = what;
    let lastChange = performance.now();
    let lastShown = 0;
    let last = '';
    for (;;) {
      if (this.failing) throw new BenchAborted();
      const { done, progress } = await probe();
      this.progress = progress;
      if (done) return;
      if (progress !== last) {
        last = progress;
        lastChange = performance.now();
      }
      if (performance.now() - lastShown > 5_000) {
        lastShown = performance.now();
        this.log(`  ${what}: ${progress}`);
      }
      const stall = options.stallSeconds ?? 60;
      if (performance.now() - lastChange > stall * 1000) this.fail('BENCH_STALLED', `${what}: no progress for ${stall} s (${progress})`, 4);
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
    }
  }

  /** Waits until `url` answers 2xx (a tracked service that exits first fails the run at once). */
  async waitForHttp(url: string, what: string): Promise<void> {
    await this.waitUntil(
      what,
      async () => {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
          return { done: res.ok, progress: `${url} answers ${res.status}` };
        } catch (err) {
          return { done: false, progress: `${url}: ${(err as Error).message}` };
        }
      },
      { intervalMs: 100, stallSeconds: 60 },
    );
  }

  /** Prints the figures as the last line and ends the run (clean-ups first). */
  async finish(result: Record<string, unknown>): Promise<never> {
    this.finished = true;
    clearTimeout(this.deadline);
    await this.cleanUp();
    console.log(JSON.stringify({ benchmark: this.name, ...result, run_s: this.seconds() }));
    process.exit(0);
  }

  /** Runs `main`; any error ends the run with its code and message. */
  async main(main: () => Promise<Record<string, unknown>>): Promise<never> {
    let result: Record<string, unknown>;
    try {
      result = await main();
    } catch (err) {
      if (!(err instanceof BenchAborted)) this.abort(codeOf(err), messageOf(err), 1);
      // The abort in progress ends the process once its clean-ups ran.
      return new Promise<never>(() => undefined);
    }
    return this.finish(result);
  }

  /** Ends the run with an error (see the class comment) and stops the caller. */
  fail(code: string, message: string, exitCode = 1): never {
    this.abort(code, message, exitCode);
    throw new BenchAborted();
  }

  private failing = false;
  private abort(code: string, message: string, exitCode: number): void {
    if (this.failing) return;
    this.failing = true;
    this.finished = true;
    process.stderr.write(`bench ${this.name}: ${code}: ${message}\n`);
    for (const { child } of this.children) child.kill('SIGKILL');
    // Processes started deeper down (a drill's services, a raw-rate probe) are children of this process too.
    spawnSync('pkill', ['-KILL', '-P', String(process.pid)]);
    // Clean-ups get 20 s together: a wedged database must not turn a deadline into another hang.
    // Side by side, not one after another: the services are killed already, so no order is needed, and
    // one clean-up that hangs (a store closing over a dead connection) must not keep a database from
    // being dropped.
    const bounded = Promise.race([this.cleanUp({ concurrently: true }), new Promise((r) => setTimeout(r, 20_000).unref())]);
    void bounded.finally(() => {
      console.log(JSON.stringify({ benchmark: this.name, error: code, message, step: this.step, progress: this.progress, run_s: this.seconds() }));
      process.exit(exitCode);
    });
  }

  private async cleanUp(options: { concurrently?: boolean } = {}): Promise<void> {
    const fns = this.cleanups.splice(0);
    const run = (fn: () => Promise<void>) => fn().catch((err: unknown) => process.stderr.write(`bench ${this.name}: clean-up failed: ${messageOf(err)}\n`));
    if (options.concurrently) await Promise.all(fns.map(run));
    else for (const fn of fns) await run(fn);
  }
}

/** Thrown to stop a caller once the run is ending with an error; never reported itself. */
class BenchAborted extends Error {
  constructor() {
    super('benchmark aborted');
  }
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'BENCH_FAILED';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
