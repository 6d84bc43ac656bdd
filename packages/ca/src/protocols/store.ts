import type { CmpTransactionRecord, CmpTransactionStatus, EnrolmentRequestRecord, PresentedCertificate } from '@fleetpki/store';

/** An audit row written in the same transaction as the change it records. */
export interface ProtocolAuditRow {
  readonly actor: string;
  readonly action: string;
  readonly subject: string;
  readonly details?: Record<string, unknown>;
}

/** The store calls the CMP server needs (migrations/0023_cmp.sql), and nothing more. */
export interface CmpStore {
  /** False when this transactionID was used before (a replay, or a client's bug). */
  openTransaction(t: { transactionId: Buffer; bodyType: CmpTransactionRecord['bodyType']; sender: string }): Promise<boolean>;
  getTransaction(transactionId: Buffer): Promise<CmpTransactionRecord | undefined>;
  /** A device certificate this CA stored, and where it stands: the credential of a device-signed message. */
  findDeviceCertificate(serial: Buffer): Promise<PresentedCertificate | undefined>;
  /** Moves a transaction from `from` to `to`, with the audit row given; false when it was not in `from`. */
  settleTransaction(
    transactionId: Buffer,
    from: CmpTransactionStatus,
    to: CmpTransactionStatus,
    values?: { certificateSerial?: Buffer; certificateSha256?: Buffer; responseNonce?: Buffer; issuedInTransaction?: boolean },
    audit?: ProtocolAuditRow,
  ): Promise<boolean>;
}

/** What withdrawing a factory's CMP reference needs. */
export interface CmpSecretWithdrawalStore {
  /** False when there is no live reference of that name; audited otherwise. */
  revokeSecret(reference: string, actor: string): Promise<boolean>;
}

/** What the CMP confirmation reconciler needs. */
export interface CmpConfirmStore {
  /** Waiting transactions older than `olderThanSeconds` marked unconfirmed (audited, one row each); how many. */
  expireWaitingTransactions(olderThanSeconds: number, actor: string): Promise<number>;
}

/** The administrators' side of held enrolment requests (migrations/0020_est.sql, 0031_enrolment_holds.sql). */
export interface EnrolmentRequestStore {
  getRequest(id: string): Promise<EnrolmentRequestRecord | undefined>;
  listRequests(status: EnrolmentRequestRecord['status']): Promise<EnrolmentRequestRecord[]>;
  /** Approves or refuses a pending request, audited; false when it was not pending any more. */
  decideRequest(id: string, decision: 'approved' | 'refused', decidedBy: string): Promise<boolean>;
}

/** What the revoker of certificates superseded by a re-enrolment needs. */
export interface SupersededStore {
  /** Certificates superseded more than `graceSeconds` ago and still unrevoked, at most `limit`. */
  supersededUnrevoked(graceSeconds: number, limit: number): Promise<Buffer[]>;
}
