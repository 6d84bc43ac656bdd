import { CaSiteReader, checkEtcdTls, lsnAtLeast, openConsensus, type CaSiteState } from '@fleetpki/consensus';
import type { FleetConfig, SiteId } from '@fleetpki/core';
import { openLeaseDatabase } from './postgres-store.js';
import type { LeaseDatabase } from './store.js';

/**
 * Who may act as the CA, as one process sees it. etcd decides (three members: both sites and a
 * witness): the active CA site is the leader of the "ca-site" election, kept by its site agent
 * (packages/sites/src/site-agent.ts) with a lease. Every service process reads the leader and the time
 * left on its lease about once a second, with a linearizable read (a process cut off from the majority
 * gets no answer), and acts only until the lease it last read runs out: from the moment it sent that
 * read, plus the seconds etcd said were left, counted on the monotonic clock (a wall clock set back
 * must not let a fenced process act longer). The site taking over waits a lease time before it acts
 * (unless the old leader handed over cleanly), so the two never overlap.
 *
 * - The leader's processes issue and vouch for "good", once their database is the primary and the site
 *   is active in it (the agent promotes and activates it right after the election).
 * - The standby vouches for "good" only while etcd confirms the primary runs strictly synchronous (no
 *   `unprotected` key, not even one being restored), it streams, and it has replayed at least as far as
 *   the primary had written when its agent last said (`vouch-floor`): the primary then cannot
 *   acknowledge a revocation the standby has not applied, and a revocation the primary already shows
 *   but has not acknowledged (it waits for a stalled standby) stops the standby's "good" within a tick
 *   and a lease read. Not while etcd is out of reach for a lease time (the primary might have gone
 *   unprotected meanwhile).
 * - A primary that is not the leader (cut off, or failed over) neither issues nor vouches.
 */
export interface LeaseView {
  /** The site may issue and sign (it leads, its database is the primary, it is active there). */
  readonly issuing: boolean;
  /** The site may answer OCSP "good" (it leads, or it is the synchronous standby of a protected primary). */
  readonly vouching: boolean;
  readonly role: 'active' | 'standby' | 'fenced' | 'unknown';
  readonly epoch: number | null;
  /** When this process's view runs out unless confirmed again, ISO time. */
  readonly until: string | null;
  /** Whether the standby streams from its primary (for /readyz), or null on a primary. */
  readonly streaming: boolean | null;
  /** Why the site may or may not issue or vouch, for /readyz and the errors. */
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

/** What one read of etcd and the site's database says (SiteObserver). */
export type LeaseObservation = { state: CaSiteState; inRecovery: boolean; epoch: number | null; activeHere: boolean; streaming: boolean | null; detail: string; replayLsn?: string | null };

/** Where SiteLease reads the CA-site role and its database's state; tests give their own. */
export interface SiteObserver {
  observe(): Promise<LeaseObservation>;
  /** After a read that failed or hung: start afresh next time. */
  reset(): void;
  close(): void;
}

/** etcd (a linearizable read) and the site's own database. */
class EtcdAndDatabaseObserver implements SiteObserver {
  private readonly db: LeaseDatabase;
  private readonly consensus;
  private readonly reader: CaSiteReader;

  constructor(
    config: FleetConfig,
    private readonly site: SiteId,
    connectionString: string,
    private readonly leaseMs: number,
  ) {
    this.db = openLeaseDatabase(config, connectionString, site);
    this.consensus = openConsensus(config, 'service', Math.max(500, Math.floor(leaseMs / 3)));
    this.reader = new CaSiteReader(this.consensus, config);
  }

  async observe(): Promise<LeaseObservation> {
    const [state, inRecovery] = await Promise.all([this.reader.read(), this.db.inRecovery()]);
    if (inRecovery) {
      const r = await this.db.receiver(this.site);
      const streaming = r.status === 'streaming' && r.ageMs !== null && r.ageMs < this.leaseMs;
      return { state, inRecovery, epoch: r.epoch, activeHere: false, streaming, replayLsn: r.replayLsn, detail: r.status === 'streaming' ? `streaming, last message ${Math.round(r.ageMs ?? 0)} ms ago, replayed to ${r.replayLsn}` : `WAL receiver ${r.status ?? 'not running'}` };
    }
    const states = await this.db.siteStates();
    const mine = states.find((s) => s.site === this.site);
    return { state, inRecovery, epoch: mine?.epoch ?? null, activeHere: mine?.role === 'active', streaming: null, detail: '' };
  }

  reset(): void {
    this.db.drop();
  }

  close(): void {
    this.consensus.close();
    this.db.drop();
  }
}

export class SiteLease {
  private view: LeaseView = { issuing: false, vouching: false, role: 'unknown', epoch: null, until: null, streaming: null, reason: 'not checked yet' };
  /** When the view runs out, on the monotonic clock (`now`): a wall-clock step cannot move it. */
  private deadline = 0;
  private readonly now: () => number;
  private readonly observer: SiteObserver;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  /** Since when (wall clock, for the message only) reads have failed, and why. */
  private lastFailure: { since: number; why: string } | undefined;
  private readonly options: SiteLeaseOptions;
  /** etcd's TLS, checked once at start: a wrong CA or certificate is a clear error, not a lease that never comes. */
  private readonly checkAtStart: () => Promise<void>;

  constructor(
    config: FleetConfig,
    private readonly site: SiteId,
    connectionString: string,
    seams: { observer?: SiteObserver; monotonicNow?: () => number } = {},
  ) {
    this.options = siteLeaseOptions(config);
    // performance.now() is monotonic (it never steps with the wall clock): what a lease deadline needs.
    this.now = seams.monotonicNow ?? (() => performance.now());
    this.observer = seams.observer ?? new EtcdAndDatabaseObserver(config, site, connectionString, this.options.leaseMs);
    this.checkAtStart = seams.observer ? async () => {} : () => checkEtcdTls(config);
  }

  private get every(): number {
    return this.options.renewEveryMs ?? Math.max(200, Math.floor(this.options.leaseMs / 5));
  }

  /** Reads now (awaits the first answer, so a service starts with its real state) and then in the background. */
  async start(): Promise<this> {
    await this.checkAtStart();
    await this.renew();
    const loop = async () => {
      if (this.closed) return;
      await (this.running = this.renew());
      if (!this.closed) this.timer = setTimeout(loop, this.every);
    };
    this.timer = setTimeout(loop, this.every);
    return this;
  }

  /** The current view; its expiry is checked on every call, not only at reads. */
  state(): LeaseView {
    if ((this.view.issuing || this.view.vouching) && this.now() >= this.deadline) {
      const why = this.lastFailure ? `${this.lastFailure.why} since ${new Date(this.lastFailure.since).toISOString()}` : 'not confirmed by etcd in time';
      this.view = { ...this.view, issuing: false, vouching: false, reason: `site ${this.site}'s role ran out at ${this.view.until ?? 'once'}: ${why}` };
    }
    return this.view;
  }

  private async renew(): Promise<void> {
    const sentAt = this.now();
    const sentAtWall = Date.now();
    const timeout = Math.max(300, Math.floor(this.options.leaseMs / 2));
    let timer: NodeJS.Timeout | undefined;
    try {
      const o = await Promise.race([
        this.observer.observe(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer from etcd within ${timeout} ms (cut off from the majority?)`)), timeout);
        }),
      ]);
      this.lastFailure = undefined;
      this.view = this.judge(o, sentAt);
    } catch (err) {
      // Whatever the database connection was doing, start afresh next time (it may hang or be broken).
      this.observer.reset();
      this.lastFailure ??= { since: sentAtWall, why: `cannot read the CA-site role: ${(err as Error).message}` };
      if (!this.view.issuing && !this.view.vouching) this.view = { ...this.view, reason: this.lastFailure.why };
    } finally {
      clearTimeout(timer);
      this.state();
    }
  }

  /** Sets the deadline (monotonic) and returns it as a wall-clock time, for people to read. */
  private runOutAt(deadline: number): string {
    this.deadline = deadline;
    return new Date(Date.now() + (deadline - this.now())).toISOString();
  }

  private judge(o: LeaseObservation, sentAt: number): LeaseView {
    const { leader, unprotected } = o.state;
    const leads = leader?.site === this.site;
    if (leads && !o.inRecovery && o.activeHere) {
      // etcd rounds the seconds left down: the view never outlives the lease.
      const until = this.runOutAt(sentAt + leader.ttlSeconds * 1000);
      return { issuing: true, vouching: true, role: 'active', epoch: o.epoch, until, streaming: null, reason: `active: site ${this.site} leads (etcd lease ${leader.lease})` };
    }
    if (o.inRecovery) {
      const until = this.runOutAt(sentAt + this.options.leaseMs);
      const floor = o.state.vouchFloor;
      // The leader's agent republishes it every tick; an old one means nobody watches the primary's WAL
      // (the agent cannot read it, or is gone), so the standby cannot know what it lacks. Generous, for
      // the clocks of two hosts.
      const floorAgeMs = floor ? Date.now() - Date.parse(floor.at) : Infinity;
      const freshFloor = floorAgeMs <= Math.max(3 * this.options.leaseMs, 15_000);
      const caughtUp = floor !== undefined && freshFloor && floor.site !== this.site && o.replayLsn != null && lsnAtLeast(o.replayLsn, floor.lsn);
      const vouching = unprotected === undefined && (leads || (o.streaming === true && caughtUp));
      const why = leads
        ? 'elected, being promoted'
        : unprotected
          ? unprotected.restoring
            ? `standby catching up after the primary ran unprotected (since ${unprotected.since}): it may lack acknowledged commits until \`sites protect\` sees it replay them, so it vouches for nothing`
            : `standby of a primary running unprotected since ${unprotected.since} (by ${unprotected.by}): it may lack acknowledged commits, so it vouches for nothing`
          : o.streaming !== true
            ? `standby not streaming (${o.detail}): it may lack what the primary shows, so it vouches for nothing`
            : floor && !freshFloor
              ? `the primary's WAL position was last published at ${floor.at}: nobody watches what the standby may lack, so it vouches for nothing`
              : !caughtUp
              ? `standby behind the primary (${o.detail}; the primary had written to ${floor?.lsn ?? 'an unknown point'}): it vouches for nothing until it has replayed that far`
              : `standby; ${o.detail}; the primary is strictly synchronous and this standby has replayed what it had written, so it holds every revocation the primary shows`;
      return { issuing: false, vouching, role: 'standby', epoch: o.epoch, until, streaming: o.streaming, reason: why };
    }
    if (leads) {
      // Promoted, not yet activated in this database: the agent does that next.
      const until = this.runOutAt(sentAt + this.options.leaseMs);
      return { issuing: false, vouching: true, role: 'standby', epoch: o.epoch, until, streaming: null, reason: 'elected and promoted; becoming the active site' };
    }
    return {
      issuing: false,
      vouching: false,
      role: 'fenced',
      epoch: o.epoch,
      until: null,
      streaming: null,
      reason: leader ? `site ${leader.site} leads (etcd); this primary neither issues nor vouches for "good" and will be rewound into its standby` : 'no site leads (etcd): nobody issues until a site agent is elected',
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.race([this.running?.catch(() => undefined), new Promise((r) => setTimeout(r, 100))]);
    this.observer.close();
  }
}
