import type { AuditEvent, CaRecord, LeaseConnection, RootLinkRecord, SiteStateRecord } from '@fleetpki/store';

// The store calls of the sites capability (which site may act), one narrow interface per caller,
// implemented for PostgreSQL by postgres-store.ts and in memory by the unit tests.

/** SiteGuard: is the database a standby, and can the primary commit now? */
export interface SiteGuardStore {
  isInRecovery(): Promise<boolean>;
  /** Whether commits wait for a synchronous standby, whether one streams, and since when it has been silent (ms). */
  syncStandbyState(): Promise<{ required: boolean; connected: boolean; replyAgeMs: number | null }>;
}

/** CaStatusGuard: every CA's status. */
export interface CaStatusStore {
  listCas(): Promise<CaRecord[]>;
}

/** The site's row of site_state (role, epoch, serial prefix), and the CAs: what loading a site's issuer reads. */
export interface SiteStateStore {
  readSiteStates(): Promise<SiteStateRecord[]>;
}

export interface SiteIssuerStore extends CaStatusStore, SiteStateStore {
  /** The links between root generations: what EST /cacerts and CMP rootCaKeyUpdate hand out. */
  rootLinks(): Promise<RootLinkRecord[]>;
}

/** Site operations done at the CLI (failover, protection): their audit events. */
export interface SiteAuditStore {
  /** Commits on this site alone (synchronous_commit local): recorded even while the synchronous standby is away. */
  appendAuditLocally(event: AuditEvent): Promise<void>;
}

/** SiteLease's own connection to the site's database: outside the pools, with short timeouts. */
export type LeaseDatabase = Pick<LeaseConnection, 'inRecovery' | 'receiver' | 'siteStates' | 'drop'>;

/**
 * The daemons' leader per job among a site's instances (several daemons processes of one site run each
 * job in one of them): whether this process leads `job` now, asked before every pass.
 */
export interface JobLeadership {
  holds(job: string): Promise<boolean>;
  /** Gives `job` up if held: this instance may not act now, so another that may takes it. */
  release(job: string): Promise<void>;
  /** Gives up every job (another instance takes them at its next check). */
  close(): Promise<void>;
}

/** Every sites port on one pool; what postgresSiteStore implements. */
export type SiteStore = SiteGuardStore & SiteIssuerStore & SiteAuditStore;
