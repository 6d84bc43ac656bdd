import { agentIdentity, CaSiteReader, campaignForCaSite, openConsensus, recordRejoin, setSwitchover, type Candidacy, type CaSiteState, type SwitchoverRequest } from '@fleetpki/consensus';
import type { FleetConfig, SiteConfig, SiteId } from '@fleetpki/core';
import { acknowledgeStandby, rejoinAsStandby, takeOver } from './failover.js';
import { archiveInheritedWal } from './wal-archive.js';
import { reloadCluster, startCluster, stopCluster, writeSettings } from './postgres-cluster.js';
import { observeLocal, type LocalDatabase } from './local-database.js';
import { publishVouchFloor, watchWrites, type FloorMemory } from './primary-duties.js';
import { readTopology } from './topology-file.js';
import { SiteOrderDesk } from './site-orders.js';

type Log = (line: string) => void;

/**
 * One per site, always running beside its PostgreSQL (started by `sites up`). It campaigns in etcd for
 * the CA-site role and makes the site's database follow what etcd decided:
 *
 * - the leader's database is the primary: a standby elected leader is promoted (after the old leader's
 *   lease has run out, unless it handed over cleanly) and the site activated, with a new epoch, in every
 *   CA database on the cluster; the other site stays its synchronous standby (strict: without it, writes
 *   wait; running without it is an operator's two-person decision, `sites unprotect`);
 * - a primary that is not the leader (it was cut off, or its site was failed over) is rewound into the
 *   leader's standby (pg_rewind, a base backup only when rewinding is impossible);
 * - a site whose PostgreSQL is down does not lead: the agent resigns at once, so the standby takes over
 *   without waiting for the lease to run out.
 *
 * A standby campaigns only behind a leader (it queues in etcd's election and is elected when the leader's
 * key goes), or when nobody has led for two lease times (a cold start without the old primary), so a cold
 * start never promotes the standby while the primary is coming up. The services never ask the agent: they
 * read etcd themselves (ca/site-lease.ts), so an agent that dies takes its site's role with it.
 */
export class SiteAgent {
  private readonly site: SiteConfig;
  private readonly other: SiteConfig;
  private readonly client;
  private readonly reader: CaSiteReader;
  /** Carries out the operators' recorded two-person orders (site-orders.ts), beside the step loop. */
  private readonly orders: SiteOrderDesk;
  private candidacy: Candidacy | undefined;
  /** When this agent first saw `unprotected` while its primary still waited for the standby (monotonic). */
  private unprotectSeenAt: number | undefined;
  private elected = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Times below are performance.now() (monotonic): a wall-clock step must not shorten or stretch a wait. */
  private leaderlessSince: number | undefined;
  /** The last leader seen that was not this site, with its lease: its services' views run out with it. */
  private lastOtherLeader: { lease: string; seenAt: number } | undefined;
  /** When this site last handed its role over in a switchover (it then waits for the other to take it). */
  private handedOverAt: number | undefined;
  private busy = false;
  /** This site's candidacy's etcd lease (hex), once granted. */
  private candidacyLease: string | undefined;
  /** A switchover waits for the standby's candidacy (said once in the log). */
  private waitingForCandidate = false;
  /** Steps in a row that found this site's candidacy key missing from etcd. */
  private candidacyMissing = 0;
  /** The other site has been marked standby again (not fenced) since it last streamed. */
  private standbyAcknowledged = false;
  private readonly floor: FloorMemory = {};

  constructor(
    private readonly config: FleetConfig,
    siteId: SiteId,
    private readonly log: Log,
    private readonly tickMs = 500,
  ) {
    this.site = config.sites[siteId];
    this.other = config.sites[siteId === 'a' ? 'b' : 'a'];
    this.client = openConsensus(config, agentIdentity(siteId));
    this.reader = new CaSiteReader(this.client, config);
    this.orders = new SiteOrderDesk(config, this.site, log);
  }

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      const started = performance.now();
      try {
        await this.tick();
      } catch (err) {
        this.log(`site ${this.site.id}: ${(err as Error).message}`);
      }
      // Nothing else runs while a step does: a long one is worth a line when a takeover is late.
      if (performance.now() - started > 10_000) this.log(`site ${this.site.id}: one step took ${((performance.now() - started) / 1000).toFixed(1)} s`);
      if (!this.stopped) this.timer = setTimeout(loop, this.tickMs);
    };
    this.timer = setTimeout(loop, 0);
    this.orders.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.orders.stop();
    // Stepping down is not the agent's to do on a stop: the lease runs out by itself, and a restart
    // of the agent campaigns again. An orderly shutdown of the whole site resigns first (`sites down`).
    this.client.close();
  }

  /** Steps down now (the site's services lose the role within their last read of etcd). */
  async resign(handedOver = false): Promise<void> {
    const candidacy = this.candidacy;
    this.candidacy = undefined;
    this.candidacyLease = undefined;
    this.elected = false;
    await candidacy?.resign(handedOver).catch(() => undefined);
  }

  private campaign(): void {
    if (this.candidacy) return;
    const candidacy = campaignForCaSite(this.client, this.config, this.site.id);
    this.candidacy = candidacy;
    this.candidacyLease = undefined;
    candidacy.lease().then(
      (lease) => {
        if (this.candidacy !== candidacy) return;
        this.candidacyLease = lease;
        this.log(`site ${this.site.id}: candidate for the CA-site role (lease ${lease})`);
      },
      () => undefined,
    );
    candidacy.elected.then(
      () => {
        if (this.candidacy === candidacy) this.elected = true;
      },
      () => undefined,
    );
    candidacy.onLost((err) => {
      if (this.candidacy !== candidacy) return;
      this.log(`site ${this.site.id}: campaign lost (${err.message}); campaigning again`);
      this.candidacy = undefined;
      this.elected = false;
    });
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.step();
    } finally {
      this.busy = false;
    }
  }

  private async step(): Promise<void> {
    let state: CaSiteState;
    try {
      state = await this.reader.read();
    } catch {
      // Cut off from the majority: nothing to decide; the services stop acting on their own.
      return;
    }
    const local = await observeLocal(this.config, this.site, this.other);
    const leader = state.leader;
    // Elected when etcd's leader key is this candidacy's, whatever became of the campaign's own watch
    // (a watch stream on a member that was cut off can stay broken for long; the reads above cannot).
    if (this.candidacy && !this.elected && leader && this.candidacyLease === leader.lease) this.elected = true;
    if (leader && leader.site !== this.site.id) this.lastOtherLeader = { lease: leader.lease, seenAt: performance.now() };
    // A candidacy whose key is gone from etcd (its lease ran out without the campaign hearing of it)
    // would wait for an election it is no longer in, and the other site would lead on by default:
    // seen twice in a row (the key follows the lease grant by a moment), it is dropped and made again.
    const keyGone = this.candidacy !== undefined && this.candidacyLease !== undefined && !state.candidates.some((c) => c.lease === this.candidacyLease);
    this.candidacyMissing = keyGone ? this.candidacyMissing + 1 : 0;
    if (this.candidacyMissing >= 2) {
      this.log(`site ${this.site.id}: this site's candidacy (lease ${this.candidacyLease}) is no longer in etcd; campaigning again`);
      this.candidacyMissing = 0;
      await this.resign();
    }
    this.leaderlessSince = leader ? undefined : (this.leaderlessSince ?? performance.now());

    // Acknowledging the standby is a duty of the primary's term; a new term does it again.
    if (!local.running || local.standby) this.standbyAcknowledged = false;
    if (!local.running) {
      // A site whose PostgreSQL is not running does not lead, and nothing of it can act: its services
      // cannot commit, and they answer OCSP "good" only after reading the revocation generation from
      // that database. So the other site may take over at once (a handover), not a lease time later.
      if (this.candidacy) {
        this.log(`site ${this.site.id}: PostgreSQL is not running; resigning the CA-site role`);
        await this.resign(true);
      }
      // It comes back only as the leader's standby (it may hold WAL the leader never received); with
      // nobody leading, the site that was the primary restarts as it was (crash recovery) and campaigns.
      if (leader && leader.site === this.other.id) await this.rejoin();
      else if (!leader && readTopology(this.config).primary === this.site.id) {
        // Just handed over: the standby (queued behind us, see handOver) is being elected and promoted;
        // restarting here would take the role back from under the switchover. Only if nobody leads after
        // the grace does this site come back as it was.
        if (this.handedOverAt !== undefined && performance.now() - this.handedOverAt < 2 * this.config.consensus.ttlSeconds * 1000 + 1_000) return;
        this.log(`site ${this.site.id}: PostgreSQL is down and nobody leads; restarting it as the primary`);
        await startCluster(this.site);
      }
      return;
    }

    if (!local.standby) {
      if (leader && leader.site === this.other.id) {
        // A primary the majority does not follow: its writes already wait for a standby that left.
        this.log(`site ${this.site.id}: site ${this.other.id} leads; this primary is rewound into its standby`);
        await this.resign();
        await this.rejoin();
        return;
      }
      this.campaign();
      if (this.elected && leader?.site === this.site.id && state.switchover?.to === this.other.id && !state.switchover.refused) {
        await this.handOver(local, state, state.switchover);
        return;
      }
      if (this.elected && leader?.site === this.site.id) {
        await this.applyProtection(local, state);
        await this.publishVouchFloor(state);
      }
      await this.watchWrites(local, state);
      if (!local.syncStandbyStreaming) this.standbyAcknowledged = false;
      else if (this.elected && !this.standbyAcknowledged) {
        await acknowledgeStandby(this.config, this.site, this.other);
        this.standbyAcknowledged = true;
      }
      return;
    }

    // A standby.
    if (state.unprotected) {
      // The primary runs without waiting for this standby: it may lack acknowledged commits, so it
      // neither campaigns nor promotes until an operator restores protection (`sites protect`).
      if (this.candidacy) {
        this.log(`site ${this.site.id}: the primary runs unprotected (since ${state.unprotected.since}, by ${state.unprotected.by}); this standby withdraws its candidacy`);
        await this.resign();
      }
      return;
    }
    if (this.elected && leader?.site === this.site.id) {
      const handedOver = this.lastOtherLeader !== undefined && state.handedOver.includes(this.lastOtherLeader.lease);
      // The old leader's processes act until the lease they last read runs out: at most one lease time
      // after they last saw it, which is no later than now plus a lease time.
      const waitMs = handedOver || this.lastOtherLeader === undefined ? 0 : this.config.consensus.ttlSeconds * 1000 + 250;
      this.log(`site ${this.site.id}: elected CA site; ${handedOver ? 'clean handover' : `waiting ${(waitMs / 1000).toFixed(1)} s for site ${this.other.id}'s processes to stop`}, then promoting`);
      if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      const still = await this.reader.read().catch(() => undefined);
      if (still?.unprotected) {
        this.log(`site ${this.site.id}: the primary ran unprotected; not promoting`);
        await this.resign();
        return;
      }
      if (!this.elected || still?.leader?.site !== this.site.id) {
        this.log(`site ${this.site.id}: no longer the leader after waiting; not promoting`);
        return;
      }
      const epoch = await takeOver(this.config, this.site, `elected in etcd${handedOver ? ' (switchover)' : ''}`);
      this.log(`site ${this.site.id}: promoted; active CA site at epoch ${epoch}`);
      // After the CA is back, not before: the old timeline's segments the old primary may not have pushed.
      void archiveInheritedWal(this.config, this.site).then(
        (r) => this.log(`site ${this.site.id}: WAL archive: ${r.pushed} segment(s) of the old timeline pushed from here, ${r.gone} recycled meanwhile${r.failed.length ? `; FAILED ${r.failed.length}, the first: ${r.failed[0]}` : ''}`),
        (err: Error) => this.log(`site ${this.site.id}: WAL archive: pushing the old timeline's segments failed: ${err.message}`),
      );
      return;
    }
    const coldStart = this.leaderlessSince !== undefined && performance.now() - this.leaderlessSince > 2 * this.config.consensus.ttlSeconds * 1000;
    // The primary handed its role to this standby (a switchover): campaign now, not after a cold start's wait.
    const handedToUs = this.lastOtherLeader !== undefined && state.handedOver.includes(this.lastOtherLeader.lease);
    if (leader || coldStart || handedToUs || this.candidacy) this.campaign();
  }

  /**
   * A planned switchover: only to a standby streaming synchronously right now (zero loss). The primary
   * stops cleanly (its last WAL, shutdown checkpoint included, reaches the standby first), then resigns
   * saying so, and the standby, elected next, takes over without waiting out the lease (nothing runs here
   * any more). This site then rejoins as its standby (a clean stop: pg_rewind has little to do).
   */
  private async handOver(local: LocalDatabase, state: CaSiteState, request: SwitchoverRequest): Promise<void> {
    if (!local.syncStandbyStreaming) {
      const refused = `site ${this.other.id} is not streaming as the synchronous standby; a switchover now could lose data`;
      this.log(`site ${this.site.id}: switchover to ${this.other.id} refused: ${refused}`);
      await setSwitchover(this.client, this.config, { ...request, refused });
      return;
    }
    // The standby must already be queued behind this site in etcd's election, so that it is the one
    // elected the moment this site resigns (a standby that had just rejoined was once not queued yet,
    // and nobody led while this site's database was already stopped). Asked again next step.
    if (!state.candidates.some((c) => c.site === this.other.id)) {
      if (!this.waitingForCandidate) this.log(`site ${this.site.id}: switchover to ${this.other.id} waits for its candidacy in etcd`);
      this.waitingForCandidate = true;
      return;
    }
    this.waitingForCandidate = false;
    this.log(`site ${this.site.id}: switchover to ${this.other.id} (asked by ${request.requestedBy}): stopping PostgreSQL cleanly, handing over`);
    await stopCluster(this.site, 'fast');
    await this.resign(true);
    this.handedOverAt = performance.now();
    await setSwitchover(this.client, this.config, undefined);
  }

  /**
   * The leader's primary waits for its synchronous standby unless operations decided otherwise
   * (`sites unprotect`, two people, recorded in etcd): the agent owns synchronous_standby_names, so a
   * restart or `sites up` cannot silently drop or restore it.
   */
  private async applyProtection(local: LocalDatabase, state: CaSiteState): Promise<void> {
    // While `sites protect` restores protection the key stays (the standby still catches up), but the
    // primary waits for it again.
    const wantSync = state.unprotected === undefined || state.unprotected.restoring === true;
    if (wantSync || !local.syncRequired) this.unprotectSeenAt = undefined;
    if (wantSync === local.syncRequired) return;
    if (!wantSync) {
      // Not before every view the standby's processes formed before the key was written has run out
      // (SiteLease: a view lasts leaseMs from when its read was sent, and the key was written before this
      // agent saw it): until then a standby process may still vouch from such a view, and must not miss
      // a commit acknowledged meanwhile (a revocation would read "good" there). Commits keep waiting for
      // the standby until then.
      this.unprotectSeenAt ??= performance.now();
      const waitedMs = performance.now() - this.unprotectSeenAt;
      if (waitedMs < this.config.siteLease.leaseMs) return;
    }
    writeSettings(this.config, this.site, wantSync ? { role: 'primary', syncStandby: this.other } : { role: 'primary' });
    await reloadCluster(this.site);
    this.log(
      wantSync
        ? `site ${this.site.id}: protected again: commits wait for site ${this.other.id} as the synchronous standby`
        : `site ${this.site.id}: WARNING running unprotected (asynchronous) since ${state.unprotected!.since}, by ${state.unprotected!.by}: commits no longer wait for site ${this.other.id}, which may not be promoted`,
    );
  }

  private async publishVouchFloor(_state: CaSiteState): Promise<void> {
    await publishVouchFloor(this.client, this.config, this.site, this.log, this.floor);
  }

  private async watchWrites(local: LocalDatabase, state: CaSiteState): Promise<void> {
    await watchWrites(this.client, this.config, this.site, this.other, this.elected && local.syncRequired && !local.syncStandbyStreaming, state, this.log);
  }

  private async rejoin(): Promise<void> {
    const started = performance.now();
    let why: string | undefined;
    const how = await rejoinAsStandby(this.config, this.site, this.other, (line) => {
      if (/did not work/.test(line)) why = line;
      this.log(line);
    });
    const seconds = Number(((performance.now() - started) / 1000).toFixed(2));
    this.log(`site ${this.site.id}: rejoined as site ${this.other.id}'s standby (${how}, ${seconds} s)`);
    await recordRejoin(this.client, this.config, this.site.id, { how, seconds, at: new Date().toISOString(), ...(why ? { why } : {}) }).catch(() => undefined);
  }
}
