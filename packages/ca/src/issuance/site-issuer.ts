import { FleetError, type FleetConfig } from '@fleetpki/core';
import type { SigningKeyStore } from '@fleetpki/hsm';
import type { CaRecord, Pool } from '@fleetpki/store';
import { CA_IDS } from '../ca-ids.js';
import { assertIssuedBy, caCertificatesForClients, rootGenerations, type RootCaKeyUpdate } from '../custody/root-generations.js';
import { siteStoreOf } from '../sites/postgres-store.js';
import type { SiteIssuerStore } from '../sites/store.js';
import { openIssuingCa, type IssuingCa } from './issuing-ca.js';

export interface SiteIssuer {
  readonly ca: IssuingCa;
  /** The root the issuing CA's certificate chains to (its parent). */
  readonly root: CaRecord;
  readonly serialPrefix: number;
  /** The root generations' link certificates, oldest first (CMP rootCaKeyUpdate); empty before any root rollover. */
  readonly rootUpdates: readonly RootCaKeyUpdate[];
  /** EST /cacerts (RFC 7030 4.1.3): the issuing CA, its root and, during a root transition, the links. */
  readonly caCertificates: readonly Buffer[];
}

/**
 * The device issuing CA as this site's services use it: its record from the store, its key in the
 * site's token (checked against the certificate), and the site's serial prefix.
 */
export async function loadSiteIssuer(config: FleetConfig, source: SiteIssuerStore | Pool, keyStore: SigningKeyStore): Promise<SiteIssuer> {
  const store = siteStoreOf(source);
  const site = config.sites[config.site];
  const cas = await store.listCas();
  const record = cas.find((c) => c.id === CA_IDS.deviceIssuing);
  const root = cas.find((c) => c.id === record?.parentId);
  if (!record || !root) throw new FleetError('CA_NOT_INITIALISED', 'no device issuing CA in the store: run `pnpm fleetpki ceremony init` first');
  assertIssuedBy(record, root);
  const generations = rootGenerations(cas, await store.rootLinks());
  const state = (await store.readSiteStates()).find((s) => s.site === site.id);
  if (!state) throw new FleetError('SITE_STATE_MISSING', `no site_state row for site ${site.id}`);
  const ca = await openIssuingCa(record, keyStore, { crlBaseUrl: config.crlBaseUrl });
  return { ca, root, serialPrefix: state.serialPrefix, rootUpdates: generations.updates, caCertificates: caCertificatesForClients(record.certificate, root, generations.updates) };
}
