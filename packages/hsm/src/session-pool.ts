/**
 * A fixed set of PKCS#11 sessions shared by concurrent callers. A session runs one operation at a time,
 * so a caller borrows one, uses it, and gives it back; waiters are served in arrival order.
 */
export class SessionPool<S> {
  private readonly idle: S[];
  private readonly waiters: ((session: S) => void)[] = [];

  constructor(sessions: readonly S[]) {
    this.idle = [...sessions];
  }

  async use<T>(fn: (session: S) => Promise<T> | T): Promise<T> {
    const session = this.idle.pop() ?? (await new Promise<S>((resolve) => this.waiters.push(resolve)));
    try {
      return await fn(session);
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.idle.push(session);
    }
  }
}
