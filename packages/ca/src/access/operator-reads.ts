import type { DatabaseRole, StatusPublication } from '@fleetpki/store';
import type { OperatorReadStore } from './store.js';

/**
 * What the operators' overview shows from other capabilities, read-only: the CRL/OCSP publication and
 * the database's replication role (a bulk revocation's preview is RevocationService.preview, status's). Behind access's port so the service reads no store; the status and sites capabilities may take
 * them over once they expose them.
 */
export class OperatorReads {
  constructor(private readonly store: OperatorReadStore) {}

  statusPublication(caId: string): Promise<StatusPublication> {
    return this.store.readStatusPublication(caId);
  }

  /** This site's database: primary with its standbys, or a standby and its replay lag. */
  databaseRole(): Promise<DatabaseRole> {
    return this.store.readDatabaseRole();
  }
}
