import { appendAuditEvents, isPool, auditRowsAfter, insertAuditKey, lastAuditSeal, listAuditKeys, listAuditSeals, listCas, recentAuditSeals, saveAuditSeal, unsealedAuditRows, withTransaction, type Pool } from '@fleetpki/store';
import { postgresAccessStore } from '../access/postgres-store.js';
import type { AuditStore } from './store.js';

/** The audit capability's ports over PostgreSQL (the existing repositories of @fleetpki/store). */
export function postgresAuditStore(pool: Pool): AuditStore {
  const access = postgresAccessStore(pool);
  return {
    sealTransaction: (work) =>
      withTransaction(pool, async (client) => {
        await client.query(`SELECT pg_advisory_xact_lock(hashtext('fleetpki-audit-seal'))`);
        return work({
          lastAuditSeal: () => lastAuditSeal(client),
          unsealedAuditRows: (afterSeq, limit) => unsealedAuditRows(client, afterSeq, limit),
          saveAuditSeal: (sealed, signed) => saveAuditSeal(client, sealed, signed),
        });
      }),
    listAuditSeals: () => listAuditSeals(pool),
    listAuditKeys: () => listAuditKeys(pool),
    listCas: () => listCas(pool),
    auditRowsAfter: (afterSeq, limit) => auditRowsAfter(pool, afterSeq, limit),
    recentAuditSeals: (limit) => recentAuditSeals(pool, limit),
    insertAuditKey: (key) => insertAuditKey(pool, key),
    readSiteStates: access.readSiteStates,
    recordOrganisationIntent: access.recordOrganisationIntent,
    storeOrganisationCertificate: access.storeOrganisationCertificate,
    appendAuditEvents: (events) => appendAuditEvents(pool, events),
  };
}

/** Callers not moved to ports yet (the CLI, the status responder, tests) still hand a Pool: the adapter over it. */
export function auditStoreOf<S extends object>(db: S | Pool): S | AuditStore {
  return isPool(db) ? postgresAuditStore(db) : db;
}
