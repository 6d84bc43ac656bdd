import type { SiteId } from '@fleetpki/core';
import type { DrillRun } from '@fleetpki/store';
import { auditActor, type Principal } from './api-tokens.js';
import type { DualControl } from './dual-control.js';
import type { DrillRecordStore } from './store.js';

/**
 * Failover drills started from the API (test deployments): a dual-controlled drill.failover, claimed
 * once, and its start in the audit log with who requested and approved it; and the drills' history
 * (RTO, RPO, timelines) that operators and auditors read.
 */
export class FailoverDrills {
  constructor(
    private readonly store: DrillRecordStore,
    private readonly site: SiteId,
    private readonly dualControl: DualControl,
  ) {}

  /** Runs `launch` as the execution of approval `approvalId` (given back if it throws), then audits the start. */
  async start<T extends { pid: number; log: string }>(by: Principal, approvalId: string, launch: () => Promise<T>): Promise<T> {
    const { record, outcome: started } = await this.dualControl.execute(by, approvalId, 'drill.failover', launch);
    await this.store.appendAuditEvents([{ site: this.site, actor: auditActor(by), action: 'drill.start', subject: 'failover', details: { pid: started.pid, log: started.log, approval: approvalId, requestedBy: record.requestedByName, approvedBy: record.approvedByName } }]);
    return started;
  }

  /** The drills run here, newest first. */
  async history(limit: number): Promise<DrillRun[]> {
    return this.store.listDrillRuns(limit);
  }
}
