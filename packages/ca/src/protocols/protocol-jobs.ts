import type { DaemonJob } from '@fleetpki/core';
import type { RevocationService } from '../status/revocation.js';
import type { CmpConfirmStore, SupersededStore } from './store.js';

/** RFC 5280 5.3.1 CRLReason superseded. */
const REASON_SUPERSEDED = 4;
/** Superseded certificates revoked per pass; a full page means more wait (the runner goes again at once). */
const SUPERSEDED_PAGE = 1_000;

/**
 * CMP certificates answered but never confirmed (no certConf within `confirmWaitSeconds`, RFC 9483
 * 4.1.1): their transactions are marked unconfirmed, one audit row each. The certificates were issued
 * completely and stay valid; a device that never got its answer enrols again with the same key and gets
 * the same certificate. One UPDATE per pass, so a second instance finds nothing left to mark.
 */
export function cmpConfirmExpiry(deps: {
  readonly store: CmpConfirmStore;
  readonly confirmWaitSeconds: number;
  /** Who the audit rows name, e.g. `daemons:a`. */
  readonly actor: string;
  readonly everyMs: number;
  /** Told how many transactions a pass marked (when any), for the log. */
  readonly onExpired?: (unconfirmed: number) => void;
}): DaemonJob {
  return {
    name: 'cmp-confirm-expiry',
    everyMs: deps.everyMs,
    async pass() {
      const unconfirmed = await deps.store.expireWaitingTransactions(deps.confirmWaitSeconds, deps.actor);
      if (unconfirmed > 0) deps.onExpired?.(unconfirmed);
      return false;
    },
  };
}

/**
 * Certificates superseded by a re-enrolment (EST simplereenroll, CMP kur, renewal) are revoked once
 * their grace period is over (`graceSeconds`): the device had that long to switch to its new one.
 * Revoking a certificate already revoked by another instance meanwhile is a no-op of the revocation
 * service, so two instances are safe.
 */
export function estSupersededRevoker(deps: {
  readonly store: SupersededStore;
  readonly revocations: Pick<RevocationService, 'revoke'>;
  readonly graceSeconds: number;
  /** Who requests the revocations (audit), e.g. `daemons:a`. */
  readonly actor: string;
  readonly everyMs: number;
  /** Told how many certificates a pass revoked (when any), for the log. */
  readonly onRevoked?: (revoked: number) => void;
}): DaemonJob {
  return {
    name: 'est-superseded',
    everyMs: deps.everyMs,
    async pass() {
      const superseded = await deps.store.supersededUnrevoked(deps.graceSeconds, SUPERSEDED_PAGE);
      if (superseded.length === 0) return false;
      const outcome = await deps.revocations.revoke({ target: { kind: 'serials', serials: superseded }, reason: REASON_SUPERSEDED, requestedBy: deps.actor, manufacturerId: null });
      if (outcome.revoked > 0) deps.onRevoked?.(outcome.revoked);
      // More waits only if this pass made progress: a full page of which nothing could be revoked would
      // come back first next time too, and passes back to back would hold the revocation lock for nothing.
      return outcome.revoked > 0 && superseded.length === SUPERSEDED_PAGE;
    },
  };
}
