import { FleetError, type SiteId } from '@fleetpki/core';
import type { InstallationStore } from './store.js';

/** A factory token acts for a registered manufacturer only: MANUFACTURER_UNKNOWN otherwise. */
export async function assertManufacturerRegistered(store: Pick<InstallationStore, 'manufacturerExists'>, id: string): Promise<void> {
  if (!(await store.manufacturerExists(id))) throw new FleetError('MANUFACTURER_UNKNOWN', `manufacturer "${id}" is not registered (pnpm fleetpki manufacturers add ...)`);
}

/** `bootstrap` is for an installation without administrators: BOOTSTRAP_DONE once any exists. */
export async function assertNoAdministrator(store: Pick<InstallationStore, 'countActiveAdministrators'>): Promise<void> {
  const n = await store.countActiveAdministrators();
  if (n > 0) throw new FleetError('BOOTSTRAP_DONE', `${n} administrator(s) exist already: create people through approvals (tokens create --approval), or see \`fleetpki recovery\` for a lost installation`);
}

/** The installation's first administrators and custodians, in the audit log under the host account that made them. */
export async function recordBootstrap(store: Pick<InstallationStore, 'appendAudit'>, o: { site: SiteId; actor: string; administrators: readonly string[]; custodians: readonly string[] }): Promise<void> {
  await store.appendAudit({ site: o.site, actor: o.actor, action: 'access.bootstrap', subject: o.administrators.join(','), details: { administrators: o.administrators, custodians: o.custodians } });
}
