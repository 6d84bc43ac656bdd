import type { FleetConfig, SiteId } from '@fleetpki/core';
import { LeaseConnection } from '@fleetpki/store';

/**
 * Who may act as the CA: the active site holds a lease in the replicated database and renews it every
 * second or so. A renewal commits only when the synchronous standby has applied it, so a site cut off
 * from its standby, or superseded by a higher epoch (a failover), cannot renew, and its processes
 * stop issuing and stop answering OCSP "good" when their last acknowledged renewal runs out. The site
 * taking over waits until the old lease has lapsed (failover.ts), so the two never overlap.
 *
 * A hot standby holds no lease and vouches for "good" even when it no longer hears from its primary:
 * the primary runs strictly synchronous (remote_apply, never without its standby), so it cannot
 * acknowledge a revocation this standby has not applied; whatever the standby does not have, nobody
 * was told. (Running the primary without its synchronous standby would break this, which is why that is
 * never automatic.) Its view still says whether it streams, for /readyz.
 *
 * Each process keeps its own view, from its own renewals: the lease lapses for a process at the start
 * of its last acknowledged renewal plus the lease time, never later than what the database recorded.
 */
export interface LeaseView {
  /** The site may issue and sign (active, lease held, not fenced). */
  readonly issuing: boolean;
  /** The site may answer OCSP "good" (lease held, or the primary's synchronous standby). */
  readonly vouching: boolean;
  readonly role: 'active' | 'standby' | 'fenced' | 'unknown';
  readonly epoch: number | null;
  /** When this process's lease runs out (active site), ISO time. */
  readonly until: string | null;
  /** Why the site may not issue or vouch, for /readyz and the errors. */
  readonly reason: string;
}

export interface SiteLeaseOptions {
  readonly leaseMs: number;
  readonly renewEveryMs?: number;
}

/** The lease's settings: FLEETPKI_SITE_LEASE_MS (config.siteLease). */
export function siteLeaseOptions(config: FleetConfig): SiteLeaseOptions {
  return { leaseMs: config.siteLease.leaseMs, renewEveryMs: config.siteLease.renewEveryMs };
}

export class SiteLease {
  private view: LeaseView = { issuing: false, vouching: false, role: 'unknown', epoch: null, until: null, reason: 'not checked yet' };
  private deadline = 0;
  private readonly db: LeaseConnection;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  private lastFailure: { since: number; why: string } | undefined;
  private inFlight: { started: number; result: ReturnType<SiteLease['attempt']> } | undefined;

  constructor(
    connectionString: string,
    private readonly site: SiteId,
    private readonly options: SiteLeaseOptions,
  ) {
    this.db = new LeaseConnection(connectionString, `fleetpki-lease-${site}`, Math.max(500, Math.floor(options.leaseMs / 3)));
  }

  private get every(): number {
    return this.options.renewEveryMs ?? Math.max(200, Math.floor(this.options.leaseMs / 5));
  }

  /** Renews now (awaits the first answer, so a service starts with its real state) and then in the background. */
  async start(): Promise<this> {
    await this.renew();
    const loop = async () => {
      if (this.closed) return;
      await (this.running = this.renew());
      if (!this.closed) this.timer = setTimeout(loop, this.every);
    };
    this.timer = setTimeout(loop, this.every);
    return this;
  }

  /** The current view; the lease's expiry is checked on every call, not only at renewals. */
  state(): LeaseView {
    if (this.view.role === 'active' && this.view.issuing && Date.now() >= this.deadline) {
      const why = this.lastFailure ? `${this.lastFailure.why} since ${new Date(this.lastFailure.since).toISOString()}` : 'no renewal acknowledged in time';
      this.view = { ...this.view, issuing: false, vouching: false, reason: `site ${this.site}'s lease ran out at ${new Date(this.deadline).toISOString()}: ${why}` };
    }
    return this.view;
  }

  private async renew(): Promise<void> {
    // A renewal that outlived its timeout is still waiting for the synchronous standby; wait for that one
    // rather than open another connection (each abandoned one would leave a backend waiting on the
    // primary until the standby returns, and a long partition would use up max_connections).
    const flight = (this.inFlight ??= { started: Date.now(), result: this.attempt() });
    const timeout = Math.max(300, Math.floor(this.options.leaseMs / 2));
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        flight.result.then((r) => ({ done: true as const, r })),
        new Promise<{ done: false }>((resolve) => {
          timer = setTimeout(() => resolve({ done: false }), timeout);
        }),
      ]);
      if (!result.done) {
        const since = flight.started;
        this.lastFailure ??= { since, why: `cannot renew the lease: no acknowledgement within ${timeout} ms (synchronous standby unreachable?)` };
        if (this.view.role !== 'active') this.view = { ...this.view, issuing: false, vouching: false, reason: this.lastFailure.why };
        return;
      }
      this.inFlight = undefined;
      this.lastFailure = undefined;
      const r = result.r;
      if (r.kind === 'active') {
        // The process's own clock from before the renewal was sent: never later than what the database recorded.
        this.deadline = flight.started + this.options.leaseMs;
        this.view = { issuing: true, vouching: true, role: 'active', epoch: r.epoch, until: new Date(this.deadline).toISOString(), reason: 'active, lease held' };
      } else if (r.kind === 'standby') {
        this.view = { issuing: false, vouching: true, role: 'standby', epoch: r.epoch, until: null, reason: r.streaming ? 'standby, streaming from the primary' : `standby, not streaming from the primary (${r.detail}); it holds every commit the primary acknowledged` };
      } else {
        this.view = { issuing: false, vouching: false, role: 'fenced', epoch: r.epoch, until: null, reason: r.detail };
      }
    } catch (err) {
      // The database refused or the connection broke: start again on a new connection next time.
      this.inFlight = undefined;
      this.db.drop();
      this.lastFailure ??= { since: flight.started, why: `cannot renew the lease: ${(err as Error).message}` };
      if (this.view.role !== 'active') this.view = { ...this.view, issuing: false, vouching: false, reason: this.lastFailure.why };
    } finally {
      clearTimeout(timer);
      this.state();
    }
  }

  private async attempt(): Promise<{ kind: 'active'; epoch: number } | { kind: 'standby'; epoch: number | null; streaming: boolean; detail: string } | { kind: 'fenced'; epoch: number | null; detail: string }> {
    if (await this.db.inRecovery()) {
      const r = await this.db.receiver(this.site);
      const streaming = r.status === 'streaming' && r.ageMs !== null && r.ageMs < this.options.leaseMs;
      return { kind: 'standby', epoch: r.epoch, streaming, detail: r.status === 'streaming' ? `last message ${Math.round(r.ageMs ?? 0)} ms ago` : `WAL receiver ${r.status ?? 'not running'}` };
    }
    // Renewed only for the active site at the highest epoch; the commit returns once the standby applied it.
    const epoch = await this.db.renew(this.site, this.options.leaseMs);
    if (epoch !== undefined) return { kind: 'active', epoch };
    const states = await this.db.siteStates();
    const mine = states.find((s) => s.site === this.site);
    const active = states.find((s) => s.role === 'active' && s.site !== this.site);
    if (mine?.role === 'standby') {
      // Promoted, not yet the active site (the failover waits for the old site's lease to lapse): its data
      // has every commit the old primary acknowledged, and nobody can commit a revocation meanwhile.
      return { kind: 'standby', epoch: mine.epoch, streaming: false, detail: 'promoted, waiting to become the active site' };
    }
    return { kind: 'fenced', epoch: mine?.epoch ?? null, detail: `site ${this.site} is ${mine?.role ?? 'unknown'}${active ? `; site ${active.site} is active at epoch ${active.epoch}` : ''}: this site neither issues nor vouches for "good"` };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    // A renewal stuck on an unreachable standby is abandoned with its connection.
    await Promise.race([this.running?.catch(() => undefined), new Promise((r) => setTimeout(r, 100))]);
    this.inFlight?.result.catch(() => undefined);
    this.db.drop();
  }
}
