import type { AuditEvent } from '@fleetpki/store';

// What the command line needs that belongs to access (people, manufacturers) and audit, while those
// capabilities are being given their own ports (issue 37): moved there once they have them.
export interface InstallationStore {
  manufacturerExists(id: string): Promise<boolean>;
  /** Administrators not disabled. */
  countActiveAdministrators(): Promise<number>;
  appendAudit(event: AuditEvent): Promise<void>;
}
