/** What a loop needs of a logger (fastify's and pino's both fit). */
interface LoopLogger {
  warn(details: object, message: string): void;
}

/**
 * Runs `pass` again and again, `everyMs` apart, one pass at a time; at once again when a pass says
 * there is more to do (a backlog). A failed pass is logged and retried after the pause. `stop()` waits
 * for the pass under way (it may be signing, and the HSM session must outlive it).
 */
export class BackgroundLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly pass: () => Promise<boolean>,
    private readonly everyMs: number,
    private readonly log: LoopLogger,
  ) {
    void this.run();
  }

  private async run(): Promise<void> {
    let more = false;
    try {
      more = await (this.running = this.pass());
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, `${this.name}: background pass failed; retrying`);
    } finally {
      this.running = undefined;
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.run(), more ? 0 : this.everyMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }
}
