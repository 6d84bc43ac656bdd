/**
 * The revocation generation as of a read that started after the caller asked: requests arriving while
 * a read is in flight share the next one. One small query serves every concurrent "good" answer.
 */
export class GenerationWatch {
  private running: Promise<number> | undefined;
  private next: Promise<number> | undefined;

  constructor(private readonly read: () => Promise<number>) {}

  current(): Promise<number> {
    if (!this.running) {
      this.running = this.read().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.current();
      });
    return this.next;
  }
}

/** Token buckets per client address and a bound on concurrent on-demand signatures. */
export class OnDemandSigning {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limits: { concurrency: number; perAddressPerSecond: number }) {}

  private bucket(address: string): { tokens: number; at: number } {
    const now = Date.now();
    const b = this.buckets.get(address) ?? { tokens: this.limits.perAddressPerSecond, at: now };
    b.tokens = Math.min(this.limits.perAddressPerSecond, b.tokens + ((now - b.at) / 1000) * this.limits.perAddressPerSecond);
    b.at = now;
    if (this.buckets.size > 100_000) this.buckets.clear();
    this.buckets.set(address, b);
    return b;
  }

  /** Takes one on-demand signature from the address's budget, if it has one left. */
  admit(address: string): boolean {
    const b = this.bucket(address);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Has the address spent its budget (it is asking for serials nobody issued faster than allowed)? */
  exhausted(address: string): boolean {
    return this.buckets.has(address) && this.bucket(address).tokens < 1;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limits.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
