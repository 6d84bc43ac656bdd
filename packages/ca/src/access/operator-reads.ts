import type { DatabaseRole, RevocationPreview, RevocationTarget, StatusPublication } from '@fleetpki/store';
import type { OperatorReadStore } from './store.js';

/**
 * What the operators' pages (the overview, the approvals list) show from other capabilities, read-only:
 * a bulk revocation's preview for the approver, the CRL/OCSP publication and the database's replication
 * role. Behind access's port so the service reads no store; the status and sites capabilities may take
 * them over once they expose them.
 */
export class OperatorReads {
  constructor(private readonly store: OperatorReadStore) {}

  /** What a bulk revocation would do now: certificates counted, and which batches (the approver's question). */
  previewRevocation(target: RevocationTarget): Promise<RevocationPreview> {
    return this.store.previewRevocation(target);
  }

  statusPublication(caId: string): Promise<StatusPublication> {
    return this.store.readStatusPublication(caId);
  }

  /** This site's database: primary with its standbys, or a standby and its replay lag. */
  databaseRole(): Promise<DatabaseRole> {
    return this.store.readDatabaseRole();
  }
}
