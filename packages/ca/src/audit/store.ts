import type { AuditEvent, AuditRow, CaRecord } from '@fleetpki/store';
import type { OrganisationIssuerStore } from '../access/store.js';

// The store calls of the audit capability, one narrow interface per caller; postgres-store.ts
// implements them over one pool, and nothing else in audit/ reaches the database.

/** A stored seal: where it ends, its chain hash, how many rows it covers, and its HSM signature. */
export interface StoredAuditSeal {
  readonly seq: string;
  readonly chainHash: Buffer;
  readonly rows: number;
  readonly keyId: Buffer | null;
  readonly signature: Buffer | null;
}

export interface AuditKeyRecord {
  readonly keyId: Buffer;
  readonly site: string;
  readonly keyLabel: string;
  readonly certificate: Buffer;
}

/** What sealing reads and writes inside its one transaction (one sealer at a time holds the lock). */
export interface AuditSealTransaction {
  lastAuditSeal(): Promise<{ seq: string; chainHash: Buffer } | undefined>;
  /** Rows after `afterSeq` not sealed yet, with how long ago each committed. */
  unsealedAuditRows(afterSeq: string, limit: number): Promise<(AuditRow & { ageMs: number })[]>;
  saveAuditSeal(sealed: readonly { seq: string; chainHash: Buffer }[], signed?: { keyId: Buffer; signature: Buffer }): Promise<void>;
}

/** sealAuditLog. */
export interface AuditSealStore {
  /** Runs `work` in one transaction holding the sealers' lock. */
  sealTransaction<T>(work: (tx: AuditSealTransaction) => Promise<T>): Promise<T>;
}

/** verifyAuditLog and the audit report. */
export interface AuditVerifyStore {
  listAuditSeals(): Promise<StoredAuditSeal[]>;
  listAuditKeys(): Promise<AuditKeyRecord[]>;
  listCas(): Promise<CaRecord[]>;
  /** A page of rows in seq order, after `afterSeq`. */
  auditRowsAfter(afterSeq: string, limit: number): Promise<AuditRow[]>;
  recentAuditSeals(limit: number): Promise<{ seq: string; rows: number; sealedAt: Date; keyId: Buffer | null }[]>;
}

/** ensureAuditKey: the audit keys known, and the organisation CA that certifies a new one. */
export interface AuditKeyStore extends OrganisationIssuerStore {
  listAuditKeys(): Promise<AuditKeyRecord[]>;
  insertAuditKey(key: AuditKeyRecord): Promise<void>;
}

/** Where capabilities and fronts append audit rows outside a transaction of their own. */
export interface AuditLogStore {
  appendAuditEvents(events: readonly AuditEvent[]): Promise<void>;
}

/** Every port of audit, as postgresAuditStore implements them over one pool. */
export type AuditStore = AuditSealStore & AuditVerifyStore & AuditKeyStore & AuditLogStore;
