import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { Pkcs11KeyStore } from './pkcs11-key-store.js';
import { readPin } from './pin.js';
import type { SignatureCheck } from './signature-check.js';

/**
 * Opens a token of the given site (default: the site's own token) with the configured module and PIN.
 * Signing threads only when asked for: the services that sign all day pass config.signing.threads; a
 * CLI command or a ceremony signs a few times on the libuv pool.
 */
export function openSiteKeyStore(config: FleetConfig, site: SiteConfig = config.sites[config.site], options: { tokenLabel?: string; sessions?: number; signingThreads?: number; check?: SignatureCheck } = {}): Promise<Pkcs11KeyStore> {
  // The site's own module, token (by label, or by slot unless another token is asked for) and PIN, as configured (hsm.<site>).
  const hsm = site.hsm;
  return Pkcs11KeyStore.open({
    modulePath: hsm.modulePath,
    tokenLabel: options.tokenLabel ?? hsm.tokenLabel,
    ...(hsm.slot !== undefined && options.tokenLabel === undefined ? { slot: hsm.slot } : {}),
    pin: readPin(`file:${hsm.pinFile}`),
    ...(hsm.softhsmConf ? { softhsmConf: hsm.softhsmConf } : {}),
    ...(options.sessions ? { sessions: options.sessions } : {}),
    signing: { threads: options.signingThreads ?? 0, check: options.check ?? { every: config.signing.checkEvery } },
  });
}
