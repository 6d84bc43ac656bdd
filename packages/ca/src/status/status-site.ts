import { isFleetError, type FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore, type KeyStore } from '@fleetpki/hsm';
import type { Pool } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, type OcspIssuerHashes } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import type { IssuingCa } from '../issuance/issuing-ca.js';
import { loadSiteIssuer } from '../issuance/site-issuer.js';
import { SiteGuard } from '../sites/site-guard.js';
import { SiteLease } from '../sites/site-lease.js';
import { OcspSigning } from './ocsp-signing.js';
import { openStatusPool, postgresStatusStore } from './postgres-store.js';
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

export async function openStatusSite(config: FleetConfig, options: { connections: number; purpose?: string }): Promise<StatusSite> {
  const site = config.sites[config.site];
  const pool = await openStatusPool(config, options.connections, options.purpose);
  const store = postgresStatusStore(pool);
  let keyStore: KeyStore | undefined;
  // Whether this site may say "good" (lease held, or a standby streaming from its primary).
  const lease = new SiteLease(config, site.id, site.serviceDatabaseUrls.status);
  try {
    await lease.start();
    const guard = new SiteGuard(pool, config, lease);
    const record = (await store.cas()).find((c) => c.id === CA_IDS.deviceIssuing);
    if (!record) throw new Error('no device issuing CA in the store: run the ceremony first');
    const certificate = parseCaCertificate(record.certificate);
    let ca: IssuingCa | undefined;
    try {
      keyStore = await openSiteKeyStore(config, site, { sessions: 4, signingThreads: config.signing.threads });
      ca = (await loadSiteIssuer(config, pool, keyStore)).ca;
    } catch (err) {
      // pkcs11js sets a numeric code on its errors: only a string code can name an HSM_ error.
      const code = (err as { code?: unknown }).code;
      if (!isFleetError(err) && !(typeof code === 'string' && code.startsWith('HSM_'))) throw err;
      await keyStore?.close();
      keyStore = undefined;
    }
    const issuer = ocspIssuerHashes(certificate.subjectDer, certificate.publicKeySpki);
    const opened = keyStore;
    return {
      pool,
      store,
      lease,
      guard,
      caId: record.id,
      issuer,
      ca,
      signing: ca ? new OcspSigning(issuer, ca.signer) : undefined,
      keyStore,
      canAct: () => guard.canAct(),
      async close() {
        await lease.close();
        await opened?.close();
        await pool.end();
      },
    };
  } catch (err) {
    await lease.close();
    await keyStore?.close();
    await pool.end();
    throw err;
  }
}
