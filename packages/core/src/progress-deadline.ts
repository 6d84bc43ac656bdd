export interface ProgressDeadlineOptions {
  /**
   * The source must deliver `progressBytes` within `idleMs` of waiting for it, again and again. Only
   * time spent waiting on the source counts: a consumer that is slow itself (a database applying
   * back-pressure) never makes its source look idle.
   */
  readonly idleMs: number;
  readonly progressBytes: number;
  /** The source must have ended this long after the first read. */
  readonly totalMs: number;
  /** The errors thrown to the consumer when a deadline passes. */
  readonly stalled: () => Error;
  readonly overdue: () => Error;
}

/**
 * A byte stream (an HTTP request body, say) read with deadlines, so that a sender trickling a byte at a
 * time, or never finishing, cannot hold what its reader holds (a database connection, a transaction)
 * for as long as it likes. A deadline that passes throws to the consumer, which stops there; the
 * source's pending read is abandoned (its owner closes the connection), never waited for.
 */
export class ProgressDeadline<T extends { readonly length: number }> implements AsyncIterable<T> {
  private cut: Error | undefined;

  constructor(
    private readonly source: AsyncIterable<T>,
    private readonly options: ProgressDeadlineOptions,
  ) {}

  /** The error a deadline cut the stream with, if one did. */
  get expired(): Error | undefined {
    return this.cut;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    const { idleMs, progressBytes, totalMs } = this.options;
    const it = this.source[Symbol.asyncIterator]();
    const end = Date.now() + totalMs;
    let waited = 0;
    let received = 0;
    try {
      for (;;) {
        const idleLeft = idleMs - waited;
        const totalLeft = end - Date.now();
        if (totalLeft <= 0) throw (this.cut = this.options.overdue());
        const started = Date.now();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'idle' | 'overdue'>((resolve) => {
          timer = setTimeout(() => resolve(idleLeft <= totalLeft ? 'idle' : 'overdue'), Math.max(0, Math.min(idleLeft, totalLeft)));
        });
        const next = await Promise.race([it.next(), timeout]).finally(() => clearTimeout(timer));
        if (next === 'idle') throw (this.cut = this.options.stalled());
        if (next === 'overdue') throw (this.cut = this.options.overdue());
        if (next.done) return;
        waited += Date.now() - started;
        received += next.value.length;
        if (received >= progressBytes) {
          received = 0;
          waited = 0;
        }
        yield next.value;
      }
    } finally {
      // Cut: a read is still pending on the source, and its end would wait for it.
      if (!this.cut) await it.return?.();
    }
  }
}
