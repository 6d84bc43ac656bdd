import { FleetError, type SiteId } from '@fleetpki/core';
import type { TrustedKeyStore } from '@fleetpki/hsm';
import type { HsmAuditStore } from './store.js';

/**
 * HSM maintenance done by a custodian at the CLI, each recorded in the audit log by custody itself:
 * the HSM work is the caller's (packages/sites runs it where the tokens are), the record is custody's.
 */
export interface HsmMaintenance {
  readonly store: HsmAuditStore;
  readonly site: SiteId;
  readonly actor: string;
}

/** Keys made non-extractable in place (`ceremony harden`): `harden` does it; the outcome is audited. */
export async function hardenTokenKeys<R extends { restricted: readonly unknown[]; movedPinFiles: readonly unknown[] }>(m: HsmMaintenance & { tokenLabel: string }, harden: () => Promise<R>): Promise<R> {
  const report = await harden();
  await m.store.appendAudit({ site: m.site, actor: m.actor, action: 'hsm.harden', subject: m.tokenLabel, details: { restricted: report.restricted, movedPinFiles: report.movedPinFiles.length } });
  return report;
}

/** The root token moved out of site A's HSM (`ceremony migrate-root`): audited when it moved. */
export async function moveRootToken<R extends string>(m: HsmMaintenance & { rootTokenLabel: string; to: string }, move: () => Promise<R>): Promise<R> {
  const outcome = await move();
  if (outcome === 'moved') await m.store.appendAudit({ site: m.site, actor: m.actor, action: 'hsm.migrate-root', subject: m.rootTokenLabel, details: { to: m.to } });
  return outcome;
}

/**
 * Destroys a trusted key found outside a custody ceremony; refused (HSM_KEY_NOT_FOUND) when the token
 * has none by that label. Audited on the active site; a standby's database is read-only, the line in
 * its agent's log is the record there. Returns how many objects went.
 */
export async function destroyTrustedKey(m: HsmMaintenance, keyStore: TrustedKeyStore, label: string): Promise<number> {
  const removed = await keyStore.destroyTrustedKey(label);
  if (removed === 0) throw new FleetError('HSM_KEY_NOT_FOUND', `no trusted key labelled "${label}" in token ${keyStore.tokenLabel}`);
  if (!(await m.store.isInRecovery())) await m.store.appendAudit({ site: m.site, actor: m.actor, action: 'hsm.trusted-key.destroy', subject: label, details: { token: keyStore.tokenLabel, objects: removed } });
  return removed;
}
