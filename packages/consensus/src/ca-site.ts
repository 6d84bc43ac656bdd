import { Etcd3, type Campaign, type Namespace } from 'etcd3';
import { FleetError, SITE_IDS, type FleetConfig, type SiteId } from '@fleetpki/core';
import { PATRONI_NAMESPACE, readEtcdPassword, type EtcdIdentity } from './etcd-auth.js';
import { etcd3Tls, etcdClientTls } from './etcd-tls.js';

/**
 * The CA-site role in etcd. The active CA site is the leader of the election "ca-site" under the
 * pair's prefix: the site agent of each site campaigns with a lease of consensus.ttlSeconds, and etcd
 * (three members: both sites and a witness) decides. Every service process reads the leader and the
 * time left on its lease (CaSiteReader) and acts only while its own site leads.
 *
 * Keys under the prefix:
 *   election/ca-site/<lease>  the candidates; the oldest is the leader (etcd's election recipe)
 *   unprotected               present while the primary runs without its synchronous standby (an
 *                             explicit two-person decision): the standby then vouches for nothing and
 *                             may not be promoted automatically; {restoring: true} while `sites protect`
 *                             waits for the standby to replay what the primary acknowledged meanwhile
 *   vouch-floor               the leader's primary's WAL position ({site, lsn, at}), written by its agent
 *                             every tick: a standby vouches for "good" only once it has replayed that far
 *                             (a stalled standby stops vouching within a tick and a lease read)
 *   handover/<lease>          written by a leader that stopped its PostgreSQL cleanly before resigning
 *                             (a planned switchover): the next leader need not wait out its lease
 *   switchover                a planned switchover asked of the leader's agent ({to, requestedBy, at});
 *                             the agent answers in the same key ({refused}) or by handing over
 *   rejoin/<site>             how the site last rejoined as the standby ({how, seconds, at}): for
 *                             `sites status`, the failback drill and the benchmark
 *   writes/<site>             present while the leader's primary cannot commit (its synchronous standby
 *                             unreachable): {since}, for `sites status`
 *   drill                     present while a drill runs ({kind, pid, by, since}; drill-lock.ts): one at a time
 *   orders/<id>               a two-person decision (site.unprotect, site.protect, site.failover) the CLI
 *                             recorded in the database first and asks an agent to carry out ({order});
 *                             the agent answers in the same key ({order, answer: {done} | {refused}});
 *                             on the writer's lease, gone after ORDER_TTL_SECONDS (site-orders.ts)
 *
 * etcd runs with authentication (etcd-auth.ts): only the site agents write under the prefix beyond
 * orders/, `drill` and `switchover` (the CLI's) and only they can revoke a candidacy's lease, so
 * `unprotected` and a forced failover happen only through an agent acting on a recorded order
 * (packages/sites/src/site-orders.ts). The services only read.
 */
export const ELECTION = 'ca-site';

export interface CaSiteLeader {
  readonly site: SiteId;
  /** The leader's etcd lease, hex. */
  readonly lease: string;
  /** Seconds etcd says are left on it (whole seconds, rounded down by etcd: never more than real). */
  readonly ttlSeconds: number;
}

export interface CaSiteCandidate {
  readonly site: SiteId;
  /** The candidacy's etcd lease, hex. */
  readonly lease: string;
}

export interface CaSiteState {
  readonly leader: CaSiteLeader | undefined;
  /** Every candidate, oldest first: the leader (if its lease lives) and those queued behind it. */
  readonly candidates: readonly CaSiteCandidate[];
  readonly unprotected: UnprotectedState | undefined;
  readonly vouchFloor: VouchFloor | undefined;
  /** The lease of a leader that handed over cleanly (switchover), if any. */
  readonly handedOver: readonly string[];
  readonly switchover: SwitchoverRequest | undefined;
  /** Sites whose primary cannot commit (synchronous standby unreachable), since when. */
  readonly writesBlocked: Readonly<Partial<Record<SiteId, string>>>;
}

export interface UnprotectedState {
  readonly since: string;
  readonly by: string;
  /** `sites protect` has begun: the primary waits for its standby again, which is still catching up. */
  readonly restoring?: boolean;
}

/** How far the leader's primary had written (pg_current_wal_lsn), as its agent last saw it. */
export interface VouchFloor {
  readonly site: SiteId;
  /** PostgreSQL's text form, X/Y (hex). */
  readonly lsn: string;
  readonly at: string;
}

/** Compares PostgreSQL LSNs in their text form (X/Y, hex): a >= b. */
export function lsnAtLeast(a: string, b: string): boolean {
  const value = (lsn: string) => {
    const [hi, lo] = lsn.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  return value(a) >= value(b);
}

export interface SwitchoverRequest {
  readonly to: SiteId;
  readonly requestedBy: string;
  readonly at: string;
  /** Set by the leader's agent when it will not hand over (the standby is not in sync). */
  readonly refused?: string;
}

/** The etcd client the other packages hold (only this package imports etcd3). */
export type ConsensusClient = Etcd3;

/**
 * One etcd client for the pair of sites, authenticated as `as` (etcd-auth.ts: each caller takes the
 * narrowest identity its code needs); calls fail within `callTimeoutMs` rather than hang.
 */
export function openConsensus(config: FleetConfig, as: EtcdIdentity, callTimeoutMs = 1_500): Etcd3 {
  return new Etcd3({
    hosts: [...config.consensus.endpoints],
    dialTimeout: callTimeoutMs,
    // Over TLS (etcd-tls.ts) when the config names the material: the password then travels encrypted.
    ...etcd3Tls(etcdClientTls(config)),
    auth: { username: as, password: readEtcdPassword(config, as) },
    // A connection to a member that was cut off sends nothing back, not even a reset: pings find it
    // within 3 s, so the streams on it (a campaign's watch, lease keep-alives) move to another member.
    // The members accept pings every second (etcd-cluster.ts: --grpc-keepalive-min-time), while a call or
    // stream is open (they refuse pings on idle connections).
    grpcOptions: { 'grpc.keepalive_time_ms': 2_000, 'grpc.keepalive_timeout_ms': 1_000, 'grpc.keepalive_permit_without_calls': 0 },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  });
}

function namespaceOf(client: Etcd3, config: FleetConfig): Namespace {
  return client.namespace(config.consensus.prefix);
}

function parseSite(value: string): SiteId {
  const site = (JSON.parse(value) as { site?: string }).site;
  if (!SITE_IDS.includes(site as SiteId)) throw new FleetError('CONSENSUS_INVALID', `the ca-site leader's value names no site: ${value}`);
  return site as SiteId;
}

/** Patroni's cluster name (its `scope`) under PATRONI_NAMESPACE: its keys are `<prefix>patroni/fleetpki/...`. */
export const PATRONI_SCOPE = 'fleetpki';

/** A key of Patroni's store, relative to the pair's prefix. */
export function patroniKey(name: string): string {
  return `${PATRONI_NAMESPACE}${PATRONI_SCOPE}/${name}`;
}

/**
 * Patroni names its members after the sites (`site_a`): the name streamed under as a standby too. Any
 * other member (a DBA's reporting replica, a stray key) is no site: ignored as a candidate, and as the
 * leader it makes no site lead (the services stop rather than fail every read).
 */
function siteOfMember(name: string): SiteId | undefined {
  const site = name.replace(/^site_/, '');
  return SITE_IDS.includes(site as SiteId) ? (site as SiteId) : undefined;
}

/**
 * Reads the CA-site role: a linearizable read, so a member cut off from the majority answers nothing.
 * With database.ha patroni the leader is Patroni's: its leader key (value: the member's name) and the
 * lease Patroni keeps it on, so the services' view of the role runs out with Patroni's leadership, and
 * there is no second election; the candidates are Patroni's members.
 */
export class CaSiteReader {
  private readonly ns: Namespace;
  private readonly patroni: boolean;

  constructor(
    private readonly client: Etcd3,
    config: FleetConfig,
  ) {
    this.ns = namespaceOf(client, config);
    this.patroni = config.databaseHa === 'patroni';
  }

  /**
   * The candidates, the leader first when there is one: the election's keys (oldest leads), or Patroni's
   * leader key and members (only the leader key makes a leader; a member key is no candidacy of its own).
   */
  private async candidateKeys(): Promise<{ list: { site: SiteId; lease: string }[]; leaderFirst: boolean }> {
    if (!this.patroni) {
      const kvs = (await this.ns.getAll().prefix(`election/${ELECTION}/`).sort('Create', 'Ascend').exec()).kvs;
      return { list: kvs.map((kv) => ({ site: parseSite(kv.value.toString()), lease: kv.lease })), leaderFirst: kvs.length > 0 };
    }
    const [leader, members] = await Promise.all([this.ns.get(patroniKey('leader')).exec(), this.ns.getAll().prefix(patroniKey('members/')).sort('Create', 'Ascend').exec()]);
    const lead = leader.kvs[0];
    const rest = members.kvs.flatMap((kv) => {
      const site = siteOfMember(kv.key.toString().split('/').pop()!);
      return site ? [{ site, lease: kv.lease }] : [];
    });
    const site = lead ? siteOfMember(lead.value.toString()) : undefined;
    if (!lead || !site) return { list: rest, leaderFirst: false };
    return { list: [{ site, lease: lead.lease }, ...rest.filter((c) => c.site !== site)], leaderFirst: true };
  }

  async read(): Promise<CaSiteState> {
    const [candidateKeys, unprotected, floor, handovers, switchover, writes] = await Promise.all([
      this.candidateKeys(),
      this.ns.get('unprotected').string(),
      this.ns.get('vouch-floor').string(),
      this.ns.getAll().prefix('handover/').keys(),
      this.ns.get('switchover').string(),
      this.ns.getAll().prefix('writes/').strings(),
    ]);
    const first = candidateKeys.leaderFirst ? candidateKeys.list[0] : undefined;
    let leader: CaSiteLeader | undefined;
    if (first) {
      const lease = BigInt(first.lease).toString(16);
      const live = await this.client.leaseClient.leaseTimeToLive({ ID: first.lease });
      const ttl = Number(live.TTL);
      if (ttl > 0) leader = { site: first.site, lease, ttlSeconds: ttl };
    }
    return {
      leader,
      candidates: candidateKeys.list.map((c) => ({ site: c.site, lease: BigInt(c.lease).toString(16) })),
      unprotected: unprotected ? (JSON.parse(unprotected) as UnprotectedState) : undefined,
      vouchFloor: floor ? (JSON.parse(floor) as VouchFloor) : undefined,
      handedOver: handovers.map((k) => k.slice('handover/'.length)),
      switchover: switchover ? (JSON.parse(switchover) as SwitchoverRequest) : undefined,
      writesBlocked: Object.fromEntries(Object.entries(writes).map(([k, v]) => [k.slice('writes/'.length), (JSON.parse(v) as { since: string }).since])),
    };
  }
}

export interface Candidacy {
  /** Resolves when this site leads. */
  readonly elected: Promise<void>;
  /** Fires when the campaign failed (its lease lost): the site no longer leads, or never will. */
  onLost(handler: (err: Error) => void): void;
  /** This campaign's lease, hex. */
  lease(): Promise<string>;
  /** Steps down; with handedOver, tells the next leader this one stopped cleanly. */
  resign(handedOver?: boolean): Promise<void>;
  /** Milliseconds since the lease was last confirmed by etcd (for the agent's own deadline). */
  sinceKeepAliveMs(): number;
}

/** The site agent's campaign for the CA-site role. */
export function campaignForCaSite(client: Etcd3, config: FleetConfig, site: SiteId): Candidacy {
  const ns = namespaceOf(client, config);
  const campaign: Campaign = ns.election(ELECTION, config.consensus.ttlSeconds).campaign(JSON.stringify({ site, pid: process.pid, since: new Date().toISOString() }));
  // Monotonic: a deadline derived from it must not move when the wall clock is stepped.
  let lastKeepAlive = performance.now();
  // Campaign keeps its lease private; its keep-alives are what tell us etcd still counts us.
  const lease = (campaign as unknown as { lease: { on(event: 'keepaliveSucceeded', h: () => void): void; grant(): Promise<string> } }).lease;
  lease.on('keepaliveSucceeded', () => {
    lastKeepAlive = performance.now();
  });
  const lost: ((err: Error) => void)[] = [];
  campaign.on('error', (err) => lost.forEach((h) => h(err)));
  const elected = new Promise<void>((resolve, reject) => {
    campaign.on('elected', () => resolve());
    campaign.on('error', reject);
  });
  elected.catch(() => undefined);
  return {
    elected,
    onLost: (handler) => lost.push(handler),
    lease: async () => BigInt(await lease.grant()).toString(16),
    resign: async (handedOver = false) => {
      if (handedOver) {
        const id = BigInt(await lease.grant()).toString(16);
        // Outlives the campaign's lease by a little, then goes: only the next election needs it.
        const marker = ns.lease(config.consensus.ttlSeconds * 3, { autoKeepAlive: false });
        await marker.put(`handover/${id}`).value(new Date().toISOString());
      }
      await campaign.resign();
    },
    sinceKeepAliveMs: () => performance.now() - lastKeepAlive,
  };
}

/** The leader's agent: how far its primary has written (vouch-floor). */
export async function setVouchFloor(client: Etcd3, config: FleetConfig, value: VouchFloor): Promise<void> {
  await namespaceOf(client, config).put('vouch-floor').value(JSON.stringify(value));
}

/** Records (or clears) that the primary runs without its synchronous standby. */
export async function setUnprotected(client: Etcd3, config: FleetConfig, value: UnprotectedState | undefined): Promise<void> {
  const ns = namespaceOf(client, config);
  if (value) await ns.put('unprotected').value(JSON.stringify(value));
  else await ns.delete().key('unprotected');
}

/** Revokes the leader's lease (a forced failover, approved by two people): it stops leading at once. */
export async function revokeLeaderLease(client: Etcd3, leaseHex: string): Promise<void> {
  await client.leaseClient.leaseRevoke({ ID: BigInt(`0x${leaseHex}`).toString() });
}

/** Asks the leader's agent to hand the CA-site role to `to` (or clears the request). */
export async function setSwitchover(client: Etcd3, config: FleetConfig, request: SwitchoverRequest | undefined): Promise<void> {
  const ns = namespaceOf(client, config);
  if (request) await ns.put('switchover').value(JSON.stringify(request));
  else await ns.delete().key('switchover');
}

export interface RejoinRecord {
  /** pg_rewind, a fresh copy, or (under Patroni) a plain restart as the standby when nothing had diverged. */
  readonly how: 'rewound' | 'copied' | 'restarted';
  readonly seconds: number;
  readonly at: string;
  /** Why rewinding did not work, when the site was copied instead. */
  readonly why?: string;
}

export async function recordRejoin(client: Etcd3, config: FleetConfig, site: SiteId, record: RejoinRecord): Promise<void> {
  await namespaceOf(client, config).put(`rejoin/${site}`).value(JSON.stringify(record));
}

export async function readRejoin(client: Etcd3, config: FleetConfig, site: SiteId): Promise<RejoinRecord | undefined> {
  const value = await namespaceOf(client, config).get(`rejoin/${site}`).string();
  return value ? (JSON.parse(value) as RejoinRecord) : undefined;
}

/** Records (or clears) that `site`'s primary cannot commit because its synchronous standby is unreachable. */
export async function recordWritesBlocked(client: Etcd3, config: FleetConfig, site: SiteId, since: string | undefined): Promise<void> {
  const ns = namespaceOf(client, config);
  if (since) await ns.put(`writes/${site}`).value(JSON.stringify({ since }));
  else await ns.delete().key(`writes/${site}`);
}
