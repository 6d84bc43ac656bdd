import {
  appendAuditEvents,
  approveRequest,
  claimExecution,
  createPersonAs,
  createTokenAs,
  databaseNow,
  findAdministratorsWhoCanApprove,
  findApiTokenByHash,
  findForeignDeviceInRange,
  findOrganisationCertificateByKey,
  findOverlappingRanges,
  findPersonByName,
  getApprovalRequest,
  getCmpSecret,
  getOrganisationCertificate,
  insertApiToken,
  insertApprovalRequest,
  insertManufacturerRange,
  insertOrganisationCertificate,
  insertPersonAsOwner,
  isExclusionViolation,
  issueCmpSecret,
  listApiTokens,
  listApprovalRequests,
  listCas,
  listDrillRuns,
  listInternalTlsCertificates,
  listManufacturerRanges,
  listMasterKeys,
  listPeople,
  manufacturerExists,
  postgresConsoleSessionStore,
  readDatabaseRole,
  readSiteStates,
  readStatusPublication,
  recordOrganisationIntent,
  recordOutcome,
  releaseExecution,
  rescopePersonAs,
  revokeApiTokenAs,
  revokeOrganisationCertificate,
  setManufacturerManifestKey,
  setManufacturerTransportKey,
  upsertManufacturer,
  withTransaction,
  type ConsoleSessionStore,
  type Pool,
  type Queryable,
  isPool,
  isUniqueViolation,
  supersedeInternalTls,
} from '@fleetpki/store';
import { FleetError } from '@fleetpki/core';
import type { AccessStore, ManufacturerTransaction, OwnerAccessTransaction } from './store.js';

/** The calls that run on one connection: the pool's, or a transaction's. */
function onConnection(db: Queryable): OwnerAccessTransaction & ManufacturerTransaction {
  return {
    appendAuditEvents: (events) => appendAuditEvents(db, events),
    findPersonByName: (name) => findPersonByName(db, name),
    insertPersonAsOwner: (person) => insertPersonAsOwner(db, person),
    insertApiToken: (token) => insertApiToken(db, token),
    findAdministratorsWhoCanApprove: () => findAdministratorsWhoCanApprove(db),
    upsertManufacturer: (id, name) => upsertManufacturer(db, id, name),
    setManufacturerManifestKey: (id, spki) => setManufacturerManifestKey(db, id, spki),
    setManufacturerTransportKey: (id, spki) => setManufacturerTransportKey(db, id, spki),
    manufacturerExists: (id) => manufacturerExists(db, id),
    findOverlappingRanges: (first, last) => findOverlappingRanges(db, first, last),
    findForeignDeviceInRange: (manufacturerId, first, last) => findForeignDeviceInRange(db, manufacturerId, first, last),
    insertManufacturerRange: (range) => insertManufacturerRange(db, range),
  };
}

/** The access capability's ports over PostgreSQL (the existing repositories of @fleetpki/store). */
export function postgresAccessStore(pool: Pool): AccessStore {
  return {
    ...onConnection(pool),
    ownerTransaction: (work) => withTransaction(pool, (client) => work(onConnection(client))),
    manufacturerTransaction: (work) => withTransaction(pool, (client) => work(onConnection(client))),
    findApiTokenByHash: (sha256) => findApiTokenByHash(pool, sha256),
    listPeople: () => listPeople(pool),
    listApiTokens: () => listApiTokens(pool),
    rescopePersonAs: (change) => rescopePersonAs(pool, change),
    createCredentialAs: (credential) =>
      withTransaction(pool, async (client) => {
        if (credential.person) await createPersonAs(client, credential.person);
        await createTokenAs(client, credential.token);
      }),
    revokeApiTokenAs: (id, proof) => revokeApiTokenAs(pool, id, proof),
    peopleBehind: async (proof) => (await pool.query<{ behind: string[] }>('SELECT fp_people_behind(person_id, creator) AS behind FROM fp_credential_people($1)', [proof])).rows[0]!.behind,
    insertApprovalRequest: (request) => insertApprovalRequest(pool, request),
    getApprovalRequest: (id) => getApprovalRequest(pool, id),
    listApprovalRequests: (options) => listApprovalRequests(pool, options),
    approveRequest: (id, proof) => approveRequest(pool, id, proof),
    claimExecution: (id, action, proof) => claimExecution(pool, id, action, proof),
    releaseExecution: (id, proof) => releaseExecution(pool, id, proof),
    recordOutcome: (id, outcome, proof) => recordOutcome(pool, id, outcome, proof),
    databaseNow: () => databaseNow(pool),
    getOrganisationCertificate: (serial) => getOrganisationCertificate(pool, serial),
    revokeOrganisationCertificate: (serial, audit) =>
      withTransaction(pool, async (client) => {
        if (!(await revokeOrganisationCertificate(client, serial))) return false;
        await appendAuditEvents(client, [audit]);
        return true;
      }),
    findOrganisationCertificateByKey: (purpose, keyId) => findOrganisationCertificateByKey(pool, purpose, keyId),
    listInternalTlsCertificates: () => listInternalTlsCertificates(pool),
    listCas: () => listCas(pool),
    readSiteStates: () => readSiteStates(pool),
    recordOrganisationIntent: (intent) => recordOrganisationIntent(pool, intent),
    storeOrganisationCertificate: (certificate, audit, internal) =>
      withTransaction(pool, async (client) => {
        if (certificate.tlsPart && certificate.tlsHost) await supersedeExpected(client, { host: certificate.tlsHost, part: certificate.tlsPart, by: certificate.serial }, internal?.supersedes ?? null);
        try {
          await insertOrganisationCertificate(client, certificate);
        } catch (err) {
          // Another issuance for the same host's part committed between our supersession and this insert.
          if (isUniqueViolation(err) && certificate.tlsPart) throw changedUnderUs(certificate.tlsHost!, certificate.tlsPart);
          throw err;
        }
        await appendAuditEvents(client, [audit]);
      }),
    listMasterKeys: () => listMasterKeys(pool),
    issueCmpSecret: (site, secret) => issueCmpSecret(pool, site, secret),
    getCmpSecret: (reference) => getCmpSecret(pool, reference),
    listManufacturerRanges: (manufacturerId) => listManufacturerRanges(pool, manufacturerId),
    isRangeConflict: isExclusionViolation,
    listDrillRuns: (limit) => listDrillRuns(pool, limit),
    readStatusPublication: (caId) => readStatusPublication(pool, caId),
    readDatabaseRole: () => readDatabaseRole(pool),
  };
}

function changedUnderUs(host: string, part: string): FleetError {
  return new FleetError('INTERNAL_TLS_CHANGED', `the current ${part} certificate of host ${host} changed while a new one was issued (another issue or rotate at the same time?): nothing was stored or written; list them and try again`, { httpStatus: 409 });
}

/** Supersedes the host's part's current certificate, refusing (rolling back) unless it is the one the issuer saw. */
async function supersedeExpected(client: Queryable, change: { host: string; part: string; by: Buffer }, expected: Buffer | null): Promise<void> {
  const marked = await supersedeInternalTls(client, change);
  const same = expected ? marked.length === 1 && marked[0]!.equals(expected) : marked.length === 0;
  if (!same) throw changedUnderUs(change.host, change.part);
}

/** The console's sessions over PostgreSQL (the functions of migrations/0026). */
export function postgresConsoleSessions(pool: Pool): ConsoleSessionStore {
  return postgresConsoleSessionStore(pool);
}

/**
 * Callers not moved to ports yet (the CLI, the drills, tests, benchmarks) still hand a Pool where a
 * port is taken: they get the PostgreSQL adapter over it (isPool tells them apart).
 */
export function accessStoreOf<S extends object>(db: S | Pool): S | AccessStore {
  return isPool(db) ? postgresAccessStore(db) : db;
}
