import type { SiteId } from '@fleetpki/core';
import {
  decideEnrolmentRequest,
  expireWaitingCmpTransactions,
  findPresentedCertificate,
  getCmpTransaction,
  getEnrolmentRequest,
  listEnrolmentRequests,
  openCmpTransaction,
  revokeCmpSecret,
  settleCmpTransaction,
  supersededUnrevoked,
  type Pool,
} from '@fleetpki/store';
import type { CmpConfirmStore, CmpSecretWithdrawalStore, CmpStore, EnrolmentRequestStore, SupersededStore } from './store.js';

/** The protocols' ports over PostgreSQL: the one file of protocols/ that reaches the store. */
export function postgresCmpStore(pool: Pool, site: SiteId): CmpStore & CmpSecretWithdrawalStore & CmpConfirmStore {
  return {
    openTransaction: (t) => openCmpTransaction(pool, site, t),
    getTransaction: (id) => getCmpTransaction(pool, id),
    findDeviceCertificate: (serial) => findPresentedCertificate(pool, serial),
    settleTransaction: (id, from, to, values, audit) => settleCmpTransaction(pool, site, id, from, to, values, audit),
    revokeSecret: (reference, actor) => revokeCmpSecret(pool, site, reference, actor),
    expireWaitingTransactions: (olderThanSeconds, actor) => expireWaitingCmpTransactions(pool, site, olderThanSeconds, actor),
  };
}

export function postgresEnrolmentRequestStore(pool: Pool, site: SiteId): EnrolmentRequestStore {
  return {
    getRequest: (id) => getEnrolmentRequest(pool, id),
    listRequests: (status) => listEnrolmentRequests(pool, status),
    decideRequest: (id, decision, decidedBy) => decideEnrolmentRequest(pool, site, id, decision, decidedBy),
  };
}

export function postgresSupersededStore(pool: Pool): SupersededStore {
  return { supersededUnrevoked: (graceSeconds, limit) => supersededUnrevoked(pool, graceSeconds, limit) };
}
