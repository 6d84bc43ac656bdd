import {
  appendAuditEvents,
  getKek,
  getManufacturerTransportKey,
  insertCa,
  insertKek,
  insertKeyBackup,
  insertMasterKey,
  isInRecovery,
  listCas,
  listRootLinks,
  insertRootLink,
  recertifyCa,
  listKeyBackups,
  listMasterKeys,
  nextCrlNumber,
  previousCaCertificates,
  saveCrl,
  saveDeviceKeyChecks,
  retireRootCa,
  withTransaction,
  type Pool,
  isPool,
} from '@fleetpki/store';
import { assertDevicesOwned } from '../issuance/device-ownership.js';
import type { CustodyStore } from './store.js';

/** The custody ports on the site's PostgreSQL database: the only file of custody/ that calls the store. */
export function postgresCustodyStore(pool: Pool): CustodyStore {
  return {
    listCas: () => listCas(pool),
    recordCas: (records, event) =>
      withTransaction(pool, async (client) => {
        for (const record of records) await insertCa(client, record);
        await appendAuditEvents(client, [event]);
      }),
    renewCa: (caId, parentId, certificate, notAfter, event) =>
      withTransaction(pool, async (client) => {
        await recertifyCa(client, caId, parentId, certificate, notAfter);
        await appendAuditEvents(client, [event]);
      }),
    previousCaCertificates: (caId) => previousCaCertificates(pool, caId),
    rootLinks: () => listRootLinks(pool),
    retireRoot: (rootId, event) =>
      withTransaction(pool, async (client) => {
        await retireRootCa(client, rootId);
        await appendAuditEvents(client, [event]);
      }),
    recordRootRollover: ({ root, link, recertified }, event) =>
      withTransaction(pool, async (client) => {
        await insertCa(client, root);
        await insertRootLink(client, link);
        for (const r of recertified) await recertifyCa(client, r.caId, root.id, r.certificate, r.notAfter);
        await appendAuditEvents(client, [event]);
      }),
    publishCrl: (caId, build) =>
      withTransaction(pool, async (client) => {
        const crlNumber = await nextCrlNumber(client, caId);
        const { crl, event, result } = await build(crlNumber);
        await saveCrl(client, { ...crl, crlNumber });
        await appendAuditEvents(client, [event]);
        return result;
      }),
    listMasterKeys: () => listMasterKeys(pool),
    recordCustody: (kek, backups, event) =>
      withTransaction(pool, async (client) => {
        await insertKek(client, kek);
        for (const backup of backups) await insertKeyBackup(client, backup);
        await appendAuditEvents(client, [event]);
      }),
    getKek: (id) => getKek(pool, id),
    listKeyBackups: (kekId) => listKeyBackups(pool, kekId),
    recordMasterKey: (role, version, label, objectId, event) =>
      withTransaction(pool, async (client) => {
        await insertMasterKey(client, role, version, label, objectId);
        await appendAuditEvents(client, [event]);
      }),
    manufacturerTransportKey: (manufacturerId) => getManufacturerTransportKey(pool, manufacturerId),
    saveDeviceKeyChecks: (bundle, checks) => saveDeviceKeyChecks(pool, bundle, checks),
    assertDevicesOwned: (manufacturerId, eui64s) => assertDevicesOwned(pool, manufacturerId, eui64s),
    isInRecovery: () => isInRecovery(pool),
    appendAudit: (event) => appendAuditEvents(pool, [event]),
  };
}

/**
 * Transitional: the custody classes take their port, and for callers not yet moved (other services,
 * integration tests) a pool, which is wrapped here (isPool tells them apart).
 */
export function custodyStoreOf<S>(source: S | Pool): S {
  return isPool(source) ? (postgresCustodyStore(source) as S) : source;
}
