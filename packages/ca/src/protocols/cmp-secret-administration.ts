import { FleetError } from '@fleetpki/core';
import type { CmpSharedSecrets } from '../access/cmp-credentials.js';
import type { SiteGuard } from '../sites/site-guard.js';
import type { CmpSecretWithdrawalStore } from './store.js';

/**
 * Administrators provision factories' CMP MAC references (the secret is shown once, derived in the HSM
 * by CmpSharedSecrets) and withdraw them; both only where this site may write.
 */
export class CmpSecretAdministration {
  constructor(
    private readonly secrets: Pick<CmpSharedSecrets, 'issue'>,
    private readonly store: CmpSecretWithdrawalStore,
    private readonly guard: Pick<SiteGuard, 'assertWritable'>,
  ) {}

  /** A new secret for `reference` (a new version when it exists), returned once. */
  async issue(reference: string, manufacturerId: string, actor: string): Promise<{ reference: string; version: number; secret: string }> {
    await this.guard.assertWritable();
    return this.secrets.issue(reference, manufacturerId, actor);
  }

  /** The reference stops working at once (audited); CMP_REFERENCE_NOT_FOUND (404) when none is live. */
  async withdraw(reference: string, actor: string): Promise<void> {
    await this.guard.assertWritable();
    if (!(await this.store.revokeSecret(reference, actor))) throw new FleetError('CMP_REFERENCE_NOT_FOUND', `no live CMP reference ${reference.slice(0, 64)}`, { httpStatus: 404 });
  }
}
