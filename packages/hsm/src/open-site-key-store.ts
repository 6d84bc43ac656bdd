import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { Pkcs11KeyStore } from './pkcs11-key-store.js';
import { readPin } from './pin.js';
import type { SignatureCheck } from './signature-check.js';

/** Opens a token of the given site (default: the site's own token) with the configured module and PIN. */
export function openSiteKeyStore(config: FleetConfig, site: SiteConfig = config.sites[config.site], options: { tokenLabel?: string; sessions?: number; signingThreads?: number; check?: SignatureCheck } = {}): Promise<Pkcs11KeyStore> {
  return Pkcs11KeyStore.open({
    modulePath: config.pkcs11Module,
    tokenLabel: options.tokenLabel ?? site.hsmTokenLabel,
    pin: readPin(`file:${site.hsmPinFile}`),
    softhsmConf: site.softhsmConf,
    ...(options.sessions ? { sessions: options.sessions } : {}),
    signing: { threads: options.signingThreads ?? config.signing.threads, check: options.check ?? { every: config.signing.checkEvery } },
  });
}
