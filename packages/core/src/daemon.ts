import type { DaemonJob } from './daemon-job.js';

/** What a daemon needs of a logger (pino's and fastify's both fit). */
export interface DaemonLogger {
  warn(details: object, message: string): void;
}

/** A daemon's figures, for /metrics and the logs. */
export interface DaemonStats {
  readonly name: string;
  /** Passes run to the end (a failed one not counted). */
  readonly passes: number;
  readonly failures: number;
  /** Passes not run because this instance may not act now (not the active site's leader). */
  readonly skippedNotLeader: number;
  /** When the last pass (run or failed) ended. */
  readonly lastPassAt: Date | undefined;
  readonly lastDurationMs: number | undefined;
}

export interface DaemonOptions {
  /** Asked before each pass: only the active site's leader runs the job (several instances are safe). */
  readonly mayRun?: () => Promise<boolean>;
  readonly log: DaemonLogger;
  /**
   * Called once for a pass still running `passDeadlineMs` after it began (an HSM call or a query that
   * never returns). The pass cannot be cancelled from here and, while it hangs, this instance keeps the
   * job's leadership lock, so no other instance runs the job: the caller ends the process, its sessions
   * and locks with it (services/daemons kills itself with DAEMONS_PASS_STUCK and is restarted).
   */
  readonly onStuck?: (job: string, deadlineMs: number) => void;
  /** Default DEFAULT_PASS_DEADLINE_MS; only used with onStuck. */
  readonly passDeadlineMs?: number;
}

/** Long enough for a pass over a full backlog slice (a CRL shard of a million entries signs in seconds). */
export const DEFAULT_PASS_DEADLINE_MS = 600_000;

/**
 * Runs one job: a pass, then the job's pause (none when the pass says a backlog remains), one pass at a
 * time, until stopped. A failed pass is logged and retried after the pause. `stop()` waits for the pass
 * under way (it may be signing, and the HSM session must outlive it).
 */
export class Daemon {
  private timer: NodeJS.Timeout | undefined;
  /** The pass under way or queued last: passes run one after another, never overlapping. */
  private chain: Promise<unknown> = Promise.resolve();
  private started = false;
  private stopped = false;
  private figures = { passes: 0, failures: 0, skippedNotLeader: 0, lastPassAt: undefined as Date | undefined, lastDurationMs: undefined as number | undefined };

  constructor(
    readonly job: DaemonJob,
    private readonly options: DaemonOptions,
  ) {}

  get name(): string {
    return this.job.name;
  }

  get stats(): DaemonStats {
    return { name: this.job.name, ...this.figures };
  }

  /** Starts the loop (the first pass at once). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.loop();
  }

  /**
   * One pass now, after the leader check, as the loop runs it (a failure is logged and counted, not
   * thrown): true when a backlog remains. Tests and scripts drive daemons with this, without timers;
   * it waits for a pass under way first, so passes never overlap.
   */
  runOnce(): Promise<boolean> {
    const pass = this.chain.then(() => this.passOnce());
    this.chain = pass;
    return pass;
  }

  private async passOnce(): Promise<boolean> {
    try {
      if (this.options.mayRun && !(await this.options.mayRun())) {
        this.figures.skippedNotLeader++;
        return false;
      }
    } catch (err) {
      this.figures.failures++;
      this.options.log.warn({ daemon: this.job.name, err: { message: (err as Error).message } }, `${this.job.name}: leader check failed; retrying`);
      return false;
    }
    const started = performance.now();
    const { onStuck } = this.options;
    const deadlineMs = this.options.passDeadlineMs ?? DEFAULT_PASS_DEADLINE_MS;
    const deadline = onStuck ? setTimeout(() => onStuck(this.job.name, deadlineMs), deadlineMs) : undefined;
    try {
      const more = await this.job.pass();
      this.figures.passes++;
      return more;
    } catch (err) {
      this.figures.failures++;
      this.options.log.warn({ daemon: this.job.name, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } }, `${this.job.name}: pass failed; retrying`);
      return false;
    } finally {
      clearTimeout(deadline);
      this.figures.lastPassAt = new Date();
      this.figures.lastDurationMs = Math.round(performance.now() - started);
    }
  }

  private async loop(): Promise<void> {
    if (this.stopped) return;
    const more = await this.runOnce();
    if (!this.stopped) this.timer = setTimeout(() => void this.loop(), more ? 0 : this.job.everyMs);
  }

  /** Stops the loop; resolves when the pass under way has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.chain;
  }
}
