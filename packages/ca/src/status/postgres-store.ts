import {
  appendAuditEvents,
  batchOwner,
  certificatesIssuedAfter,
  crlStates,
  databaseNow,
  getCertificateStatus,
  getCrl,
  listCas,
  listDirtyShards,
  revocationsAwaitingOcsp,
  listFullCrls,
  lookupOcsp,
  markCaRevoked,
  ocspResponseFeedPosition,
  ocspResponsesExpiringBefore,
  previewRevocation,
  revocationGeneration,
  revocationsSince,
  revokeCertificates,
  saveOcspResponses,
  storedOcspResponsesBySerial,
  storedOcspResponsesSince,
  unsignedRevocations,
  withCrlSnapshot,
  withTransaction,
  type Pool,
} from '@fleetpki/store';
import type { StatusStore } from './store.js';

/**
 * The status capability's one door to PostgreSQL: every port of store.ts over the repository
 * functions of packages/store. The only file of ca/src/status that imports store values.
 */
export function postgresStatusStore(pool: Pool): StatusStore {
  return {
    crlStates: () => crlStates(pool),
    unsignedRevocations: () => unsignedRevocations(pool),
    lookupOcsp: (serial, hashAlg) => lookupOcsp(pool, serial, hashAlg),
    certificateStatus: (serial) => getCertificateStatus(pool, serial),
    revocationGeneration: () => revocationGeneration(pool),
    saveOcspResponses: (responses) => saveOcspResponses(pool, responses),
    storedOcspResponsesBySerial: (after, validBeyond, limit) => storedOcspResponsesBySerial(pool, after, validBeyond, limit),
    storedOcspResponsesSince: (afterSeq, limit) => storedOcspResponsesSince(pool, afterSeq, limit),
    ocspResponseFeedPosition: () => ocspResponseFeedPosition(pool),
    revocationsSince: (cursor, limit) => revocationsSince(pool, cursor, limit),
    certificatesIssuedAfter: (caId, cursor, until, limit) => certificatesIssuedAfter(pool, caId, cursor, until, limit),
    ocspResponsesExpiringBefore: (caId, before, limit) => ocspResponsesExpiringBefore(pool, caId, before, limit),
    dirtyShards: (caId) => listDirtyShards(pool, caId),
    revocationsAwaitingOcsp: (caId) => revocationsAwaitingOcsp(pool, caId),
    fullCrls: (caId) => listFullCrls(pool, caId),
    withCrlSnapshot: (fn) => withCrlSnapshot(pool, fn),
    crl: (caId, shard, kind) => getCrl(pool, caId, shard, kind),
    cas: () => listCas(pool),
    batchOwner: (batchId) => batchOwner(pool, batchId),
    revokeCertificates: (request) => revokeCertificates(pool, request),
    previewRevocation: (target) => previewRevocation(pool, target),
    databaseNow: () => databaseNow(pool),
    markCaRevoked: (caId, reason, approvalId, audit) =>
      withTransaction(pool, async (client) => {
        await markCaRevoked(client, caId, reason, approvalId);
        await appendAuditEvents(client, [{ site: audit.site, actor: audit.actor, action: 'ca.revoke', subject: caId, details: audit.details }]);
      }),
  };
}
