import type {
  ApiTokenListing,
  ApiTokenRecord,
  ApprovalAction,
  ApprovalRecord,
  AuditEvent,
  CaRecord,
  CmpSecretRecord,
  DatabaseRole,
  DrillRun,
  InternalTlsRecord,
  ManufacturerRange,
  MasterKeyRecord,
  OrganisationCertificateRecord,
  PersonRecord,
  Role,
  SiteStateRecord,
  StatusPublication,
} from '@fleetpki/store';

// The store calls of the access capability, one narrow interface per caller (Boulder's sa subsets):
// each class sees only what it uses, and unit tests fake exactly that. postgres-store.ts implements
// them all over one pool; nothing else in access/ reaches the database.

/** Audit rows written by the capability doing the action (the database assigns seq and time). */
export interface AuditAppender {
  appendAuditEvents(events: readonly AuditEvent[]): Promise<void>;
}

/** TokenAuthenticator: a token by the SHA-256 of its secret. */
export interface TokenLookupStore {
  findApiTokenByHash(tokenSha256: Buffer): Promise<ApiTokenRecord | undefined>;
}

/** Everyone behind a credential (its holder, its creator, up the chain; migrations/0028), by the credential's proof. */
export interface PeopleBehindStore {
  peopleBehind(proof: string): Promise<string[]>;
}

/**
 * AccessAdministration. The *As calls are the database's rule functions (migrations/0026): each proves
 * the administrator's credential and writes its own audit row.
 */
export interface AccessAdministrationStore {
  manufacturerExists(id: string): Promise<boolean>;
  findPersonByName(name: string): Promise<PersonRecord | undefined>;
  listPeople(): Promise<PersonRecord[]>;
  listApiTokens(): Promise<ApiTokenListing[]>;
  rescopePersonAs(change: { personId: string; role: Role; actorProof: string; approvalId: string }): Promise<void>;
  /** The person (when `person` is given) and the token, in one transaction. */
  createCredentialAs(credential: {
    person?: { id: string; name: string; role: Role; manufacturerId: string | null; actorProof: string; approvalId: string | null };
    token: { id: string; personId: string; name: string; tokenSha256: Buffer; expiresAt: Date | null; actorProof: string; approvalId: string | null };
  }): Promise<void>;
  /** True when a live token was revoked. */
  revokeApiTokenAs(id: string, actorProof: string): Promise<boolean>;
}

/** What the owner's own writes need inside their transaction (bootstrap, recovery). */
export interface OwnerAccessTransaction extends AuditAppender {
  findPersonByName(name: string): Promise<PersonRecord | undefined>;
  insertPersonAsOwner(person: { id: string; name: string; role: Role; manufacturerId: string | null }): Promise<void>;
  insertApiToken(token: { id: string; personId: string; name: string; tokenSha256: Buffer; role: Role; manufacturerId: string | null; expiresAt: Date | null }): Promise<void>;
  /** Two administrators who could approve together, if there are. */
  findAdministratorsWhoCanApprove(): Promise<readonly [string, string] | undefined>;
}

/** issueApiToken and recoverAdministrator: the owner's connection, one transaction per change. */
export interface OwnerAccessStore {
  manufacturerExists(id: string): Promise<boolean>;
  ownerTransaction<T>(work: (tx: OwnerAccessTransaction) => Promise<T>): Promise<T>;
}

/** DualControl: the approval rule functions (fp_approval_*, migrations/0015, 0026, 0032) and the database's clock. */
export interface DualControlStore extends AuditAppender, PeopleBehindStore {
  insertApprovalRequest(request: { id: string; action: ApprovalAction; payload: unknown; summary: string; proof: string; ttlSeconds: number }): Promise<ApprovalRecord>;
  getApprovalRequest(id: string): Promise<ApprovalRecord | undefined>;
  listApprovalRequests(options: { open?: boolean; limit?: number }): Promise<ApprovalRecord[]>;
  approveRequest(id: string, proof: string): Promise<ApprovalRecord>;
  claimExecution(id: string, action: ApprovalAction, proof: string): Promise<ApprovalRecord>;
  releaseExecution(id: string, proof: string): Promise<void>;
  recordOutcome(id: string, outcome: unknown, proof: string): Promise<void>;
  /** The database's clock: approvals expire by it. */
  databaseNow(): Promise<Date>;
}

/** ClientCertificateAuthenticator and the revocation of organisation certificates. */
export interface OrganisationCertificateStore extends PeopleBehindStore {
  getOrganisationCertificate(serial: Buffer): Promise<OrganisationCertificateRecord | undefined>;
  /** Revokes and audits in one transaction; false when there was no live certificate. */
  revokeOrganisationCertificate(serial: Buffer, audit: AuditEvent): Promise<boolean>;
}

/** What an organisation certificate's intent commits to before the HSM signs: its serial, purpose and TBS. */
export interface OrganisationCertificateIntent {
  readonly serial: Buffer;
  readonly purpose: OrganisationCertificateRecord['purpose'];
  /** SHA-256 of the linted DER TBS. */
  readonly tbsSha256: Buffer;
}

/** The organisation CA's issuance: prepare -> lint -> record -> sign -> store, as device certificates. */
export interface OrganisationIssuerStore {
  listCas(): Promise<CaRecord[]>;
  readSiteStates(): Promise<SiteStateRecord[]>;
  /** Commits the intent before the HSM signs (no audit row: nothing is issued yet). */
  recordOrganisationIntent(intent: OrganisationCertificateIntent): Promise<void>;
  /**
   * Stores the signed certificate of a recorded intent and the issuance's audit row, in one transaction.
   * An internal TLS certificate (tlsPart) also supersedes its host's part's current one, which must be
   * `internal.supersedes` (null: none), else nothing is stored: INTERNAL_TLS_CHANGED.
   */
  storeOrganisationCertificate(certificate: Omit<OrganisationCertificateRecord, 'revokedAt' | 'personName'>, audit: AuditEvent, internal?: { supersedes: Buffer | null }): Promise<void>;
}

/** `fleetpki tls internal`: the deployment's own TLS certificates, issued as organisation certificates. */
export interface InternalTlsStore extends OrganisationIssuerStore {
  listInternalTlsCertificates(): Promise<InternalTlsRecord[]>;
}

/** CmpSharedSecrets: which master key derives, and the references' records. */
export interface CmpSecretStore {
  listMasterKeys(): Promise<MasterKeyRecord[]>;
  issueCmpSecret(site: 'a' | 'b', secret: { reference: string; manufacturerId: string; masterLabel: string; actor: string }): Promise<CmpSecretRecord | 'foreign' | 'unknown-manufacturer'>;
  getCmpSecret(reference: string): Promise<CmpSecretRecord | undefined>;
}

/** ensureCmpProtectionKey: the live certificate of a site's CMP key, or a new one. */
export interface CmpProtectionStore extends OrganisationIssuerStore {
  findOrganisationCertificateByKey(purpose: OrganisationCertificateRecord['purpose'], keyId: Buffer): Promise<Buffer | undefined>;
}

/** What a manufacturer change needs inside its transaction. */
export interface ManufacturerTransaction extends AuditAppender {
  upsertManufacturer(id: string, name: string): Promise<void>;
  setManufacturerManifestKey(id: string, spki: Buffer): Promise<boolean>;
  setManufacturerTransportKey(id: string, spki: Buffer): Promise<boolean>;
  manufacturerExists(id: string): Promise<boolean>;
  findOverlappingRanges(first: Buffer, last: Buffer): Promise<ManufacturerRange[]>;
  findForeignDeviceInRange(manufacturerId: string, first: Buffer, last: Buffer): Promise<{ eui64: Buffer; manufacturerId: string } | undefined>;
  insertManufacturerRange(range: { manufacturerId: string; first: Buffer; last: Buffer; createdBy: string }): Promise<void>;
}

/** ManufacturerRegistry. */
export interface ManufacturerStore {
  manufacturerTransaction<T>(work: (tx: ManufacturerTransaction) => Promise<T>): Promise<T>;
  upsertManufacturer(id: string, name: string): Promise<void>;
  findOverlappingRanges(first: Buffer, last: Buffer): Promise<ManufacturerRange[]>;
  listManufacturerRanges(manufacturerId?: string): Promise<ManufacturerRange[]>;
  /** The database refused a range that overlaps another (registered concurrently). */
  isRangeConflict(err: unknown): boolean;
}

/** FailoverDrills: the drill history operators and auditors read. */
export interface DrillRecordStore extends AuditAppender {
  listDrillRuns(limit: number): Promise<DrillRun[]>;
}

/**
 * OperatorReads: what the operators' overview shows from other capabilities (the status publication,
 * the database's replication role), read-only.
 */
export interface OperatorReadStore {
  readStatusPublication(caId: string): Promise<StatusPublication>;
  readDatabaseRole(): Promise<DatabaseRole>;
}

/** Every port of access, as postgresAccessStore implements them over one pool. */
export type AccessStore = TokenLookupStore &
  AccessAdministrationStore &
  OwnerAccessStore &
  DualControlStore &
  OrganisationCertificateStore &
  CmpProtectionStore &
  InternalTlsStore &
  CmpSecretStore &
  ManufacturerStore &
  DrillRecordStore &
  OperatorReadStore;
