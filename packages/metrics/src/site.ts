import type { Registry } from 'prom-client';
import { collectedGauge } from './collected-gauge.js';
import { readFailures, sharedRead } from './scrape-read.js';

/** A process's view of its site's role (packages/ca's LeaseView has this shape). */
export interface LeaseFigures {
  readonly issuing: boolean;
  readonly role: 'active' | 'standby' | 'fenced' | 'unknown';
  readonly epoch: number | null;
  readonly until: string | null;
}

const ROLES = ['active', 'standby', 'fenced', 'unknown'] as const;

/**
 * The site's role as this process sees it (every service holds the lease it acts on): whether it may
 * act as the CA site, its role, the epoch and how long its view lasts unless confirmed again.
 */
export function leaseMetrics(registry: Registry, view: () => LeaseFigures): void {
  collectedGauge(registry, 'fleetpki_site_active', "1 while this process's site may act as the CA site (it leads, its database is the primary, it is active there)", [], (set) => set({}, view().issuing ? 1 : 0));
  collectedGauge(registry, 'fleetpki_site_role', "1 for this site's role as this process last read it", ['role'], (set) => {
    const role = view().role;
    for (const r of ROLES) set({ role: r }, r === role ? 1 : 0);
  });
  collectedGauge(registry, 'fleetpki_site_lease_seconds_left', "Seconds until this process's view of the site's role runs out unless confirmed again (0: none)", [], (set) => {
    const until = view().until;
    set({}, until === null ? 0 : Math.max(0, (Date.parse(until) - Date.now()) / 1000));
  });
  collectedGauge(registry, 'fleetpki_site_epoch', 'The CA-site epoch this process last read (-1: none yet)', [], (set) => set({}, view().epoch ?? -1));
}

/** What the site agent reads of its site's database at a scrape (packages/sites' readSiteFigures). */
export interface SiteFigures {
  /** On a primary: its standbys; empty on a standby. */
  readonly primary: boolean;
  readonly standbys: readonly { name: string; syncState: string; state: string; replayLagBytes: number; lastReplySecondsAgo: number | null }[];
  readonly archiver: { failedCount: number; lastSuccessSeconds: number | null };
  readonly audit: { lastSealedSeq: number; unsealed: number; oldestUnsealedSeconds: number };
  readonly drills: readonly { kind: string; finishedAt: Date; rtoSeconds: number | null; rpoLost: number | null }[];
}

/** Replication, the WAL archive, the audit log's seals and the last drills (docs/metrics.md, Sites and audit). */
export function siteFiguresMetrics(registry: Registry, read: () => Promise<SiteFigures>): void {
  const figures = sharedRead(read);
  const gauge = (name: string, help: string, labels: readonly ('kind' | 'standby')[], collect: (f: SiteFigures, set: (labels: { kind?: string; standby?: string }, value: number) => void) => void) =>
    collectedGauge(registry, name, help, labels, async (set) => {
      const f = await figures.get();
      if (f) collect(f, set);
    });
  // A figure that means nothing here (replication on a standby) or could not be read is NaN in a gauge
  // without labels (collectedGauge), and has no series in a labelled one.
  gauge('fleetpki_database_primary', "1 when this site's cluster is the primary, 0 on a standby", [], (f, set) => set({}, f.primary ? 1 : 0));
  gauge('fleetpki_replication_synchronous', 'On the primary: 1 when a synchronous standby is streaming, else 0 (NaN on a standby)', [], (f, set) => {
    if (f.primary) set({}, f.standbys.some((s) => s.syncState === 'sync' && s.state === 'streaming') ? 1 : 0);
  });
  gauge('fleetpki_replication_lag_bytes', 'On the primary, per standby: WAL bytes not yet replayed there', ['standby'], (f, set) => {
    for (const s of f.standbys) set({ standby: s.name }, s.replayLagBytes);
  });
  gauge('fleetpki_replication_reply_age_seconds', 'On the primary, per standby: seconds since it last replied', ['standby'], (f, set) => {
    for (const s of f.standbys) if (s.lastReplySecondsAgo !== null) set({ standby: s.name }, s.lastReplySecondsAgo);
  });
  gauge('fleetpki_wal_archive_failed_total', 'WAL segments the archiver failed to push since the cluster started (pg_stat_archiver)', [], (f, set) => set({}, f.archiver.failedCount));
  gauge('fleetpki_wal_archive_last_success_age_seconds', 'On the primary: seconds since the archiver last pushed a segment (NaN on a standby, or before the first since the cluster started)', [], (f, set) => {
    if (f.primary && f.archiver.lastSuccessSeconds !== null) set({}, f.archiver.lastSuccessSeconds);
  });
  gauge('fleetpki_audit_last_sealed_sequence', 'Sequence number of the last sealed audit event', [], (f, set) => set({}, f.audit.lastSealedSeq));
  gauge('fleetpki_audit_unsealed_events', 'Audit events after the last seal', [], (f, set) => set({}, f.audit.unsealed));
  gauge('fleetpki_audit_oldest_unsealed_seconds', 'Age of the oldest audit event not yet sealed (0 when none)', [], (f, set) => set({}, f.audit.oldestUnsealedSeconds));
  gauge('fleetpki_drill_last_timestamp_seconds', 'When the last drill of each kind ended (Unix time)', ['kind'], (f, set) => {
    for (const d of f.drills) set({ kind: d.kind }, d.finishedAt.getTime() / 1000);
  });
  gauge('fleetpki_drill_last_rto_seconds', 'Recovery time the last drill of each kind measured', ['kind'], (f, set) => {
    for (const d of f.drills) if (d.rtoSeconds !== null) set({ kind: d.kind }, d.rtoSeconds);
  });
  gauge('fleetpki_drill_last_rpo_lost', 'Acknowledged writes the last drill of each kind lost (0 expected)', ['kind'], (f, set) => {
    for (const d of f.drills) if (d.rpoLost !== null) set({ kind: d.kind }, d.rpoLost);
  });
  readFailures(registry, figures);
}
