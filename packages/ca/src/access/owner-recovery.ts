import { randomUUID } from 'node:crypto';
import { FleetError, type SiteId } from '@fleetpki/core';
import type { Pool } from '@fleetpki/store';
import { accessStoreOf } from './postgres-store.js';
import type { OwnerAccessStore } from './store.js';
import { newTokenSecret } from './api-tokens.js';

/**
 * Disaster recovery with the database owner's access (`db` is the owner's: the host's owner access is
 * the trust boundary here, as at installation). It creates one new administrator, and only while no two
 * administrators can approve together; otherwise people are created through approvals. It never gives
 * an existing person a credential: one holder of the owner's access would then hold two
 * administrators' tokens and satisfy dual control alone. Returns the new token (shown once).
 */
export async function recoverAdministrator(db: OwnerAccessStore | Pool, options: { site: SiteId; actor: string; name: string; reason: string }): Promise<string> {
  const { token, sha256 } = newTokenSecret();
  const store: OwnerAccessStore = accessStoreOf(db);
  await store.ownerTransaction(async (tx) => {
    const pair = await tx.findAdministratorsWhoCanApprove();
    if (pair) {
      throw new FleetError('RECOVERY_REFUSED', `administrators ${pair[0]} and ${pair[1]} can still approve together: a new administrator is theirs to create (approvals request person.create); owner-access recovery is for when no two administrators can`, { httpStatus: 409 });
    }
    if (await tx.findPersonByName(options.name)) {
      throw new FleetError('PERSON_EXISTS', `${options.name} exists already: recovery creates a new administrator, it never gives an existing person a credential`, { httpStatus: 409 });
    }
    const personId = randomUUID();
    const tokenId = randomUUID();
    await tx.insertPersonAsOwner({ id: personId, name: options.name, role: 'administrator', manufacturerId: null });
    await tx.insertApiToken({ id: tokenId, personId, name: options.name, tokenSha256: sha256, role: 'administrator', manufacturerId: null, expiresAt: null });
    await tx.appendAuditEvents([
      { site: options.site, actor: options.actor, action: 'person.create.owner', subject: personId, details: { name: options.name, role: 'administrator', manufacturerId: null } },
      { site: options.site, actor: options.actor, action: 'token.create.owner', subject: tokenId, details: { name: options.name, role: 'administrator', manufacturerId: null, person: personId } },
      { site: options.site, actor: options.actor, action: 'access.recovery.owner', subject: options.name, details: { reason: options.reason, person: personId } },
    ]);
  });
  return token;
}
