import { randomUUID } from 'node:crypto';
import type { Queryable } from '../pool.js';

/** Site drills (the CA moves between sites) and recovery drills (a backup restored: restore, disaster). */
export const DRILL_KINDS = ['failover', 'switchover', 'failback', 'restore', 'disaster'] as const;
export type DrillKind = (typeof DRILL_KINDS)[number];

export interface DrillRun {
  readonly id: string;
  readonly kind: DrillKind;
  readonly from: string | null;
  readonly to: string | null;
  readonly finishedAt: Date;
  /** Recovery time in seconds (failover: last acknowledgement of the failed site to the first of the new one; switchover: its downtime). */
  readonly rtoSeconds: number | null;
  /** Certificates acknowledged and lost. */
  readonly rpoLost: number | null;
  /** The drill's whole report, as the CLI prints it with --json (with its timeline where it has one). */
  readonly report: Record<string, unknown>;
}

export async function recordDrillRun(db: Queryable, run: Omit<DrillRun, 'id' | 'finishedAt'>): Promise<string> {
  const id = randomUUID();
  await db.query('INSERT INTO drill_runs (id, kind, from_site, to_site, rto_s, rpo_lost, report) VALUES ($1, $2, $3, $4, $5, $6, $7)', [id, run.kind, run.from, run.to, run.rtoSeconds, run.rpoLost, JSON.stringify(run.report)]);
  return id;
}

export async function listDrillRuns(db: Queryable, limit: number): Promise<DrillRun[]> {
  const { rows } = await db.query<{ id: string; kind: DrillRun['kind']; from_site: string | null; to_site: string | null; finished_at: Date; rto_s: string | null; rpo_lost: number | null; report: Record<string, unknown> }>(
    'SELECT id, kind, from_site, to_site, finished_at, rto_s::text, rpo_lost, report FROM drill_runs ORDER BY finished_at DESC LIMIT $1',
    [limit],
  );
  return rows.map((r) => ({ id: r.id, kind: r.kind, from: r.from_site, to: r.to_site, finishedAt: r.finished_at, rtoSeconds: r.rto_s === null ? null : Number(r.rto_s), rpoLost: r.rpo_lost, report: r.report }));
}
