/**
 * A fixed set of PKCS#11 sessions shared by concurrent callers. A session runs one operation at a time,
 * so a caller borrows one, uses it, and gives it back; waiters are served in arrival order.
 *
 * A session that fails with a session or login error (closed underneath, token logged out, device
 * reset) is not given back as it is: `recovery.replace` opens a new one (logging in again where needed)
 * and the operation is tried once more on it.
 */
export class SessionPool<S> {
  private readonly idle: S[];
  private readonly waiters: ((session: S) => void)[] = [];

  constructor(
    sessions: readonly S[],
    private readonly recovery?: { isBroken(err: unknown): boolean; replace(broken: S, err: unknown): Promise<S> | S },
  ) {
    this.idle = [...sessions];
  }

  async use<T>(fn: (session: S) => Promise<T> | T): Promise<T> {
    let session = this.idle.pop() ?? (await new Promise<S>((resolve) => this.waiters.push(resolve)));
    try {
      try {
        return await fn(session);
      } catch (err) {
        if (!this.recovery?.isBroken(err)) throw err;
        session = await this.recovery.replace(session, err);
        return await fn(session);
      }
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.idle.push(session);
    }
  }
}
