import type { DaemonJob } from '@fleetpki/core';
import type { CrlPublisher } from './crl-publisher.js';
import type { OcspCacheWarmer } from './ocsp-cache-warmer.js';
import { OCSP_PASS_LIMITS, type OcspPreProducer } from './ocsp-preproducer.js';
import type { OcspRefresher } from './ocsp-refresher.js';
import type { OcspRevocationResigner } from './ocsp-revocations.js';

// The status capability's background work as daemon jobs (core/daemon.ts runs them). A pass that did a
// full pass's worth (a batch issued while the site was busy, responses nearing nextUpdate) says so, and
// the runner goes again without the pause; less than that waits for the next pass (passes back to back
// that each find a few rows keep PostgreSQL busy for little signing, beside a batch issuing on the same
// cores).

/**
 * Waiting for the responder's re-signing of a revocation burst: at most this long after a shard was
 * dirtied (10,000 revocations are re-signed in about five seconds on two shared cores).
 */
export const CRL_YIELD_TO_OCSP_MS = 30_000;

/** Publishes the CRL shards that are dirty, missing or near nextUpdate; dirty ones yield to OCSP re-signing. */
export function crlPublisherJob(publisher: CrlPublisher, everyMs = 500, yieldToOcspMs = CRL_YIELD_TO_OCSP_MS): DaemonJob {
  return {
    name: 'crl-publisher',
    everyMs,
    async pass() {
      await publisher.publishDue({ yieldToOcspMs });
      return false;
    },
  };
}

/** Pre-produces the SHA-1 CertID response of every newly issued certificate. */
export function ocspPreProducerJob(preProducer: OcspPreProducer, everyMs = 500): DaemonJob {
  return { name: 'ocsp-preproducer', everyMs, pass: async () => (await preProducer.preProduceNew()) >= OCSP_PASS_LIMITS.preProduce };
}

/** Produces stored responses again before they expire. */
export function ocspRefresherJob(refresher: OcspRefresher, everyMs = 500): DaemonJob {
  return { name: 'ocsp-refresher', everyMs, pass: async () => (await refresher.refreshExpiring()) >= OCSP_PASS_LIMITS.refresh };
}

/**
 * Applies new revocations to OCSP answers (the responder's cache, and re-signed responses where this
 * site may write). Runs in the responder's process, at least five times a second: a relying party must
 * see a revocation within a second or so.
 */
export function ocspRevocationsJob(resigner: OcspRevocationResigner, log: { info(details: object, message: string): void }, everyMs = 200): DaemonJob {
  return {
    name: 'ocsp-revocations',
    everyMs,
    async pass() {
      const started = Date.now();
      const revoked = await resigner.applyAllNewRevocations();
      if (revoked > 0) log.info({ revocations: revoked, ms: Date.now() - started }, 'revocations applied to OCSP');
      return false;
    },
  };
}

/**
 * Loads into the responder's cache what was stored since its last pass (the daemons' pre-produced and
 * refreshed responses, re-signed revocations): in the responder's process, on every site.
 */
export function ocspCacheFeedJob(warmer: OcspCacheWarmer, everyMs = 250): DaemonJob {
  return { name: 'ocsp-cache-feed', everyMs, pass: () => warmer.follow() };
}
