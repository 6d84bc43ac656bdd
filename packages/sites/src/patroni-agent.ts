import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { agentIdentity, CaSiteReader, openConsensus, recordRejoin, setSwitchover, type CaSiteState, type RejoinRecord } from '@fleetpki/consensus';
import type { FleetConfig, SiteConfig, SiteId } from '@fleetpki/core';
import { isInRecovery } from '@fleetpki/store';
import { caDatabases, withOwnerPool } from './ca-databases.js';
import { acknowledgeStandby, activateCaSite } from './failover.js';
import { observeLocal, type LocalDatabase } from './local-database.js';
import { ensurePatroni, patroniCall, patroniGet, patroniLogFile, patroniPid, patroniPidFile } from './patroni.js';
import { PATRONI_TIMING } from './patroni-config.js';
import { publishVouchFloor, watchWrites, type FloorMemory } from './primary-duties.js';
import { SiteOrderDesk } from './site-orders.js';
import { archiveInheritedWal } from './wal-archive.js';

type Log = (line: string) => void;

/** Where a rejoin began: when this site stopped being a primary the majority follows, and Patroni's log then. */
interface RejoinStart {
  readonly at: number;
  readonly logOffset: number;
}

/**
 * The site agent when Patroni runs PostgreSQL (database.ha patroni, issue 35). Patroni elects, promotes,
 * demotes and rewinds; its leader key in etcd is the CA-site role the services read (CaSiteReader), so
 * there is no second election. What is left here is what is the CA's own:
 *
 * - the site whose Patroni leads and whose database is the primary is activated as the CA site, with a
 *   new epoch, in every CA database (once per leadership), and pushes the old timeline's WAL it holds;
 * - the leader's agent publishes the vouch floor, says when writes are blocked, marks the other site a
 *   standby again once it streams, and maps the operators' decisions onto Patroni: `unprotected` turns
 *   synchronous_mode_strict off (commits stop waiting for a standby that is gone; Patroni still promotes
 *   only a member in sync), a switchover request becomes Patroni's switchover;
 * - how the site rejoined after losing the role (pg_rewind, a copy, a restart), recorded in etcd;
 * - in the local simulation only, it brings its site's Patroni back after a crash, as systemd's
 *   Restart= does on a host, but not before the other site leads (a site that died comes back as the
 *   standby, as a host down for a while would, rather than take its role straight back).
 */
export class PatroniSiteAgent {
  private readonly site: SiteConfig;
  private readonly other: SiteConfig;
  private readonly client;
  private readonly reader: CaSiteReader;
  private readonly orders: SiteOrderDesk;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy = false;
  /** The leader lease this site was last activated under (activation is once per leadership). */
  private activatedUnder: string | undefined;
  private standbyAcknowledged = false;
  private rejoin: RejoinStart | undefined;
  /** The size of Patroni's log when this site last led (undefined once its rejoin is recorded, or if it never led). */
  private ledUntilOffset: number | undefined;
  /** Whether this site's database was seen as a standby since it last led (a promotion then inherits WAL). */
  private wasStandby = false;
  private leaderlessSince: number | undefined;
  /** When this agent first saw `unprotected` while Patroni still ran strict (monotonic). */
  private unprotectSeenAt: number | undefined;
  private saidNotMigrated = false;
  private activatedCheckedAt = 0;
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
      if (!this.busy) {
        this.busy = true;
        try {
          await this.step();
        } catch (err) {
          this.log(`site ${this.site.id}: ${(err as Error).message}`);
        } finally {
          this.busy = false;
        }
      }
      if (!this.stopped) this.timer = setTimeout(loop, this.tickMs);
    };
    this.timer = setTimeout(loop, 0);
    this.orders.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.orders.stop();
    this.client.close();
  }

  private async step(): Promise<void> {
    let state: CaSiteState;
    try {
      state = await this.reader.read();
    } catch {
      return; // cut off from the majority: nothing to decide
    }
    const leader = state.leader;
    this.leaderlessSince = leader ? undefined : (this.leaderlessSince ?? performance.now());
    await this.supervise(leader?.site);
    const local = await observeLocal(this.config, this.site, this.other);
    const leads = leader?.site === this.site.id && local.running && !local.standby;
    if (!leads) {
      this.activatedUnder = undefined;
      this.standbyAcknowledged = false;
      this.unprotectSeenAt = undefined;
    }
    if (leads) this.ledUntilOffset = logSize(patroniLogFile(this.site));
    // Lost the role: down, a primary the majority no longer follows, or already demoted by Patroni (a
    // primary cut off from etcd demotes itself). Patroni's lines since this site last led say how it came back.
    const lost = !local.running || (!local.standby && leader !== undefined && leader.site !== this.site.id) || (local.standby && this.ledUntilOffset !== undefined);
    if (lost && !leads) this.rejoin ??= { at: performance.now(), logOffset: this.ledUntilOffset ?? logSize(patroniLogFile(this.site)) };
    if (local.running && local.standby) {
      this.wasStandby = true;
      if (this.rejoin && (await patroniGet(this.config, this.site, '/sync')).status === 200) await this.recordRejoin(this.rejoin);
      return;
    }
    if (!leads || !leader) return;
    // Patroni keeps one lease per process for its member and leader keys: A -> B -> A can show the same
    // lease. So the check is made again every few seconds, not only when the lease changes.
    if (this.activatedUnder !== leader.lease || performance.now() - this.activatedCheckedAt > 5_000) {
      this.activatedCheckedAt = performance.now();
      const active = await this.isActive();
      if (active === undefined) return;
      if (!active) {
        const epoch = await activateCaSite(this.config, this.site, 'Patroni leader');
        this.log(`site ${this.site.id}: Patroni leads here; active CA site at epoch ${epoch}`);
        if (this.wasStandby) this.pushInheritedWal();
      }
      this.activatedUnder = leader.lease;
      this.wasStandby = false;
      this.rejoin = undefined;
    }
    if (state.switchover?.to === this.other.id && !state.switchover.refused) {
      await this.switchover(state, local);
      return;
    }
    // Each duty on its own: one that fails (Patroni's API down a moment) must not skip the floor.
    for (const [what, duty] of [
      ['protection', () => this.applyProtection(state)],
      ['vouch floor', () => publishVouchFloor(this.client, this.config, this.site, this.log, this.floor)],
      ['blocked writes', () => watchWrites(this.client, this.config, this.site, this.other, local.syncRequired && !local.syncStandbyStreaming, state, this.log)],
      ['standby acknowledgement', () => this.acknowledge(local)],
    ] as const) {
      await duty().catch((err: Error) => this.log(`site ${this.site.id}: ${what}: ${err.message}`));
    }
  }

  /**
   * Brings back a Patroni that `sites up` started and that died (its pid file is there, its process is
   * not): when the other site leads, or after nobody has led for two ttl. On a host, systemd starts
   * Patroni and there is no such file: this does nothing there.
   */
  private async supervise(leader: SiteId | undefined): Promise<void> {
    if (!existsSync(patroniPidFile(this.site)) || patroniPid(this.site) !== undefined) return;
    const coldStart = this.leaderlessSince !== undefined && performance.now() - this.leaderlessSince > 2 * PATRONI_TIMING.ttl * 1000;
    if (leader !== this.other.id && !coldStart) return;
    this.log(`site ${this.site.id}: Patroni is not running; starting it (${leader ? `site ${leader} leads` : 'nobody has led for 20 s'})`);
    await ensurePatroni(this.config, this.site);
  }

  /**
   * Whether this site is active in every CA database on the cluster (the installation's and any test or
   * benchmark deployment's, as a promotion activates them all); undefined while there is none (said once).
   */
  private async isActive(): Promise<boolean | undefined> {
    const databases = await caDatabases(this.config, this.site);
    if (databases.length === 0) {
      if (!this.saidNotMigrated) this.log(`site ${this.site.id}: no migrated CA database on this cluster yet; activating once there is`);
      this.saidNotMigrated = true;
      return undefined;
    }
    this.saidNotMigrated = false;
    for (const database of databases) {
      const active = await withOwnerPool(this.config, this.site, database, async (pool) => {
        if (await isInRecovery(pool)) return false;
        const { rows } = await pool.query<{ role: string }>('SELECT role FROM site_state WHERE site = $1', [this.site.id]);
        return rows[0]?.role === 'active';
      });
      if (!active) return false;
    }
    return true;
  }

  private pushInheritedWal(): void {
    void archiveInheritedWal(this.config, this.site).then(
      (r) => this.log(`site ${this.site.id}: WAL archive: ${r.pushed} segment(s) of the old timeline pushed from here, ${r.gone} recycled meanwhile${r.failed.length ? `; FAILED ${r.failed.length}, the first: ${r.failed[0]}` : ''}`),
      (err: Error) => this.log(`site ${this.site.id}: WAL archive: pushing the old timeline's segments failed: ${err.message}`),
    );
  }

  /** Once the other site streams as the synchronous standby again, it is a standby (no longer fenced) in every CA database. */
  private async acknowledge(local: LocalDatabase): Promise<void> {
    if (!local.syncStandbyStreaming) {
      this.standbyAcknowledged = false;
      return;
    }
    if (this.standbyAcknowledged) return;
    await acknowledgeStandby(this.config, this.site, this.other);
    this.standbyAcknowledged = true;
  }

  /**
   * The operators' protection decisions (two people, recorded in etcd) as Patroni's dynamic configuration:
   *
   *   protected               synchronous_mode + strict, not paused: commits wait for the standby; Patroni
   *                           fails over on its own, only to the member in sync;
   *   unprotected             synchronous_mode off and paused: commits stop waiting for a standby that is
   *                           gone or stalled, and nothing is promoted automatically (the standby may lack
   *                           acknowledged commits; a failover is the operators' decision);
   *   restoring (`protect`)   synchronous_mode + strict again, still paused until the standby has replayed
   *                           what the primary acknowledged meanwhile (then the key goes: protected).
   *
   * Unprotecting waits until every view the standby's processes formed before the key was written has run
   * out (as with the agent's own clusters: a standby process may still vouch from such a view).
   */
  private async applyProtection(state: CaSiteState): Promise<void> {
    const u = state.unprotected;
    const want = { synchronous_mode: u === undefined || u.restoring === true, synchronous_mode_strict: u === undefined || u.restoring === true, pause: u !== undefined };
    const current = await patroniGet(this.config, this.site, '/config');
    if (current.status !== 200 || !current.body) return;
    const changes = Object.fromEntries(Object.entries(want).filter(([k, v]) => (current.body![k] === true) !== v));
    if (u === undefined || u.restoring || want.synchronous_mode === (current.body.synchronous_mode === true)) this.unprotectSeenAt = undefined;
    if (Object.keys(changes).length === 0) return;
    if (changes.synchronous_mode === false) {
      this.unprotectSeenAt ??= performance.now();
      if (performance.now() - this.unprotectSeenAt < this.config.siteLease.leaseMs) return;
    }
    const r = await patroniCall(this.config, this.site, 'PATCH', '/config', changes);
    if (r.status !== 200) {
      this.log(`site ${this.site.id}: Patroni refused ${JSON.stringify(changes)}: ${r.status} ${r.text}`);
      return;
    }
    this.log(
      u === undefined
        ? `site ${this.site.id}: protected: Patroni synchronous and strict, automatic failover on (${JSON.stringify(changes)})`
        : u.restoring
          ? `site ${this.site.id}: protection being restored: commits wait for site ${this.other.id} again; Patroni stays paused until it has caught up (${JSON.stringify(changes)})`
          : `site ${this.site.id}: WARNING running unprotected since ${u.since}, by ${u.by}: Patroni asynchronous and paused, commits no longer wait for site ${this.other.id}, which is not promoted (${JSON.stringify(changes)})`,
    );
  }

  /**
   * A planned switchover asked in etcd (`sites switchover`, which the operator's credential may write
   * alone): handed to Patroni only while it is zero-loss, as the agent's own handover was. Patroni checks
   * the candidate against its sync key only in synchronous mode; while unprotected that mode is off, and a
   * standby that lacks acknowledged commits could be promoted. So: protected (no `unprotected` key), the
   * other site streaming as the synchronous standby now, and Patroni's sync key naming it.
   */
  private async switchover(state: CaSiteState, local: LocalDatabase): Promise<void> {
    const request = state.switchover!;
    const ageMs = Date.now() - Date.parse(request.at);
    // A REST error (its certificate not vouched for, say) refuses this request rather than escaping the
    // step: unrefused, the request would be tried again every step and the primary's duties never run.
    let sync: Awaited<ReturnType<typeof patroniGet>> | Error;
    try {
      sync = await patroniGet(this.config, this.site, '/cluster');
    } catch (err) {
      sync = err as Error;
    }
    const candidateInSync = !(sync instanceof Error) && ((sync.body?.members ?? []) as { name?: string; role?: string }[]).some((m) => m.name === `site_${this.other.id}` && m.role === 'sync_standby');
    const refusal = sync instanceof Error
      ? `Patroni's REST API cannot be asked: ${sync.message}`
      : !(ageMs >= 0 && ageMs <= 120_000)
      ? `the request is from ${request.at}, not from the last two minutes: ask again`
      : state.unprotected
        ? `the primary runs unprotected since ${state.unprotected.since}: site ${this.other.id} may lack acknowledged commits`
        : !local.syncStandbyStreaming || !candidateInSync
          ? `site ${this.other.id} is not streaming as the synchronous standby (Patroni's sync key): a switchover now could lose data`
          : undefined;
    if (refusal) {
      this.log(`site ${this.site.id}: switchover to ${this.other.id} refused: ${refusal}`);
      await setSwitchover(this.client, this.config, { ...request, refused: refusal });
      return;
    }
    this.log(`site ${this.site.id}: switchover to ${this.other.id} (asked by ${request.requestedBy}): asking Patroni`);
    const r = await patroniCall(this.config, this.site, 'POST', '/switchover', { leader: `site_${this.site.id}`, candidate: `site_${this.other.id}` }).catch((err: Error) => ({ status: 0, text: err.message }));
    if (r.status !== 200) {
      const refused = `Patroni refused the switchover: ${r.status} ${r.text.trim()}`;
      this.log(`site ${this.site.id}: ${refused}`);
      await setSwitchover(this.client, this.config, { ...request, refused });
      return;
    }
    this.log(`site ${this.site.id}: Patroni switched over: ${r.text.trim()}`);
    await setSwitchover(this.client, this.config, undefined);
  }

  /** How this site came back as the standby, from what Patroni logged since it lost the role. */
  private async recordRejoin(start: RejoinStart): Promise<void> {
    this.rejoin = undefined;
    this.ledUntilOffset = undefined;
    const logged = readFrom(patroniLogFile(this.site), start.logOffset);
    const how: RejoinRecord['how'] = /pg_rewind exit code=0/.test(logged) ? 'rewound' : /basebackup|bootstrap from leader/i.test(logged) ? 'copied' : 'restarted';
    const seconds = Number(((performance.now() - start.at) / 1000).toFixed(2));
    this.log(`site ${this.site.id}: rejoined as site ${this.other.id}'s synchronous standby (${how}, ${seconds} s)`);
    const why = how === 'copied' ? /pg_rewind[^\n]*(fail|error)[^\n]*/i.exec(logged)?.[0] : undefined;
    await recordRejoin(this.client, this.config, this.site.id, { how, seconds, at: new Date().toISOString(), ...(why ? { why } : {}) }).catch(() => undefined);
  }
}

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The text of `file` from `offset` (at most 4 MB: a rejoin's lines). */
function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = Math.min(4 * 1024 * 1024, Math.max(0, statSync(file).size - offset));
    const buf = Buffer.alloc(size);
    readSync(fd, buf, 0, size, offset);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}
