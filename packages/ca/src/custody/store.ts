import type { AuditEvent, CaRecord, CrlRecord, DeviceKeyRoleName, KekRecord, KeyBackupRecord, MasterKeyRecord, RootLinkRecord } from '@fleetpki/store';

// The store calls custody needs, one narrow interface per caller (Boulder: narrow storage interfaces),
// implemented for PostgreSQL by postgres-store.ts and in memory by the unit tests. Every change is
// recorded together with its audit event, in one transaction.

/** The CA key ceremony (ceremony.ts): reads the CAs, records a new hierarchy. */
export interface CaCeremonyStore {
  listCas(): Promise<CaRecord[]>;
  /** Records the CAs and the ceremony's audit event in one transaction. */
  recordCas(records: readonly Omit<CaRecord, 'status'>[], event: AuditEvent): Promise<void>;
}

/** A CRL numbered inside the store's transaction: built (and signed) once the number is known. */
export interface NumberedCrl<T> {
  readonly crl: Omit<CrlRecord, 'crlNumber'>;
  readonly event: AuditEvent;
  readonly result: T;
}

/** What only the offline root signs (root-ceremonies.ts). */
export interface RootCeremonyStore extends CaCeremonyStore {
  /** The links between root generations (root-generations.ts finds the current root with them). */
  rootLinks(): Promise<RootLinkRecord[]>;
  /** The CA's new certificate under `parentId` (the previous one goes into its history), with the audit event. */
  renewCa(caId: string, parentId: string, certificate: Buffer, notAfter: Date, event: AuditEvent): Promise<void>;
  previousCaCertificates(caId: string): Promise<Buffer[]>;
  /** Takes the CA's next CRL number, lets `build` sign with it, stores the CRL and the audit event: one transaction. */
  publishCrl<T>(caId: string, build: (crlNumber: bigint) => Promise<NumberedCrl<T>>): Promise<T>;
}

/** A root rollover (root-rollover.ts). */
export interface RootRolloverStore extends RootCeremonyStore {
  /** The new root, its link to the old one and the re-certified CAs (previous certificates to their history), with the audit event: one transaction. */
  recordRootRollover(rollover: { root: Omit<CaRecord, 'status'>; link: RootLinkRecord; recertified: readonly { caId: string; certificate: Buffer; notAfter: Date }[] }, event: AuditEvent): Promise<void>;
  /** Marks a root retired (its transition over), with the audit event. */
  retireRoot(rootId: string, event: AuditEvent): Promise<void>;
}

/** Key custody (key-custody.ts): the keys to wrap, the KEK and its backups. */
export interface KeyCustodyStore {
  listCas(): Promise<CaRecord[]>;
  listMasterKeys(): Promise<MasterKeyRecord[]>;
  /** The KEK's record, every wrapped key and the audit event, in one transaction. */
  recordCustody(kek: Omit<KekRecord, 'createdAt'>, backups: readonly KeyBackupRecord[], event: AuditEvent): Promise<void>;
  getKek(id: string): Promise<KekRecord | undefined>;
  listKeyBackups(kekId: string): Promise<KeyBackupRecord[]>;
}

/** Device keys (device-key-service.ts): master keys, transport keys, check values. */
export interface DeviceKeyStore {
  listMasterKeys(): Promise<MasterKeyRecord[]>;
  /** A new master key version (active; earlier ones retired) and its audit event, in one transaction. */
  recordMasterKey(role: DeviceKeyRoleName, version: number, label: string, objectId: Buffer, event: AuditEvent): Promise<void>;
  /** The manufacturer's transport key: undefined for no such manufacturer, null for none registered. */
  manufacturerTransportKey(manufacturerId: string): Promise<Buffer | null | undefined>;
  saveDeviceKeyChecks(bundle: string, checks: readonly { eui64: Buffer; role: DeviceKeyRoleName; version: number; kcv: Buffer }[]): Promise<void>;
  /** Refuses (EUI64_OUTSIDE_RANGE, EUI64_NOT_AVAILABLE) when any device is not the manufacturer's. */
  assertDevicesOwned(manufacturerId: string, eui64s: readonly Buffer[]): Promise<void>;
  appendAudit(event: AuditEvent): Promise<void>;
}

/** HSM maintenance done at the CLI (hsm-maintenance.ts): its audit events, on the active site only where noted. */
export interface HsmAuditStore {
  /** A hot standby's database is read-only. */
  isInRecovery(): Promise<boolean>;
  appendAudit(event: AuditEvent): Promise<void>;
}

/** Every custody port; what postgresCustodyStore implements. */
export type CustodyStore = RootRolloverStore & KeyCustodyStore & DeviceKeyStore & HsmAuditStore;
