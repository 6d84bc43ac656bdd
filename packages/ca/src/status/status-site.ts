import type { FleetConfig } from '@fleetpki/core';
import type { KeyStore } from '@fleetpki/hsm';
import type { Pool, SessionWaits } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, type OcspIssuerHashes } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import type { IssuingCa } from '../issuance/issuing-ca.js';
import type { SiteGuard } from '../sites/site-guard.js';
import type { SiteLease } from '../sites/site-lease.js';
import { openSiteRuntimeKeyOptional } from '../sites/site-runtime.js';
import { OcspSigning } from './ocsp-signing.js';
import { postgresStatusStore } from './postgres-store.js';
import type { StatusStore } from './store.js';

/**
 * What the status processes of a site (the responder, the daemons) open at start-up: the database,
 * the site's lease (may it act, may it vouch), the device issuing CA and, where this site's HSM holds
 * its key, its signer. Without a usable key (a standby whose HSM has no clone yet) `ca` and `signing`
 * are undefined: stored responses and CRLs are still served.
 */
export interface StatusSite {
  readonly pool: Pool;
  readonly store: StatusStore;
  readonly lease: SiteLease;
  readonly guard: SiteGuard;
  readonly caId: string;
  readonly issuer: OcspIssuerHashes;
  readonly ca: IssuingCa | undefined;
  readonly signing: OcspSigning | undefined;
  readonly keyStore: KeyStore | undefined;
  /** May this site sign and write now (active site, lease held)? */
  canAct(): Promise<boolean>;
  close(): Promise<void>;
}

export async function openStatusSite(config: FleetConfig, options: { connections: number; purpose?: string; waits?: SessionWaits }): Promise<StatusSite> {
  const runtime = await openSiteRuntimeKeyOptional(config, { service: 'status', pool: { max: options.connections, ...(options.waits ? { waits: options.waits } : {}) }, ...(options.purpose ? { purpose: options.purpose } : {}), hsm: { sessions: 4, signingThreads: config.signing.threads } });
  try {
    const store = postgresStatusStore(runtime.pool);
    const record = (await store.cas()).find((c) => c.id === CA_IDS.deviceIssuing);
    if (!record) throw new Error('no device issuing CA in the store: run the ceremony first');
    const certificate = parseCaCertificate(record.certificate);
    const issuer = ocspIssuerHashes(certificate.subjectDer, certificate.publicKeySpki);
    const ca = runtime.issuer?.ca;
    return {
      pool: runtime.pool,
      store,
      lease: runtime.lease,
      guard: runtime.guard,
      caId: record.id,
      issuer,
      ca,
      signing: ca ? new OcspSigning(issuer, ca.signer) : undefined,
      keyStore: runtime.keyStore,
      canAct: () => runtime.guard.canAct(),
      close: () => runtime.close(),
    };
  } catch (err) {
    await runtime.close();
    throw err;
  }
}
