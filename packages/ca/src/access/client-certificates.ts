import { FleetError, type SiteId } from '@fleetpki/core';
import { appendAuditEvents, getOrganisationCertificate, revokeOrganisationCertificate, withTransaction, type Pool } from '@fleetpki/store';
import type { Principal } from './api-tokens.js';

/**
 * Mutual TLS: a client certificate from the organisation CA stands for a role (and a manufacturer for
 * factories) the way a token does. TLS has already checked the chain to the organisation CA; this
 * checks that fleetpki issued exactly this certificate for a client, and that it is neither revoked nor
 * expired. Cached for a few seconds like tokens, so a revocation takes effect within `cacheMs`.
 */
export class ClientCertificateAuthenticator {
  private readonly cache = new Map<string, { principal: Principal | null; until: number }>();

  constructor(
    private readonly pool: Pool,
    private readonly cacheMs = 5_000,
  ) {}

  async authenticate(peer: { raw: Buffer; serialNumber: string }): Promise<Principal> {
    const serialHex = peer.serialNumber.toLowerCase().replace(/^0+(?=..)/, '');
    const now = Date.now();
    let entry = this.cache.get(serialHex);
    if (!entry || entry.until < now) {
      const serial = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
      const record = await getOrganisationCertificate(this.pool, serial);
      const usable = record && record.purpose === 'client' && !record.revokedAt && record.notAfter.getTime() > now && record.certificate.equals(peer.raw) && record.role && record.personId;
      entry = { principal: usable ? { credential: `cert:${serialHex}`, proof: `cert:${serialHex}`, personId: record.personId!, name: record.personName ?? serialHex, role: record.role!, manufacturerId: record.manufacturerId } : null, until: now + this.cacheMs };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(serialHex, entry);
    }
    // Made only when thrown, as in TokenAuthenticator: a stack trace per request is not free.
    if (!entry.principal) throw new FleetError('CLIENT_CERT_INVALID', 'the client certificate is not one fleetpki issued for an API client, or it is revoked or expired', { httpStatus: 401 });
    return entry.principal;
  }
}

export async function revokeClientCertificate(pool: Pool, site: SiteId, serialHex: string, actor: string): Promise<void> {
  if (!/^[0-9a-f]{2,40}$/i.test(serialHex)) throw new FleetError('SERIAL_INVALID', `"${serialHex.slice(0, 40)}" is not a hex serial`, { httpStatus: 400 });
  await withTransaction(pool, async (client) => {
    if (!(await revokeOrganisationCertificate(client, Buffer.from(serialHex, 'hex')))) throw new FleetError('CERTIFICATE_NOT_FOUND', `no live organisation certificate ${serialHex}`, { httpStatus: 404 });
    await appendAuditEvents(client, [{ site, actor, action: 'org-certificate.revoke', subject: serialHex.toLowerCase() }]);
  });
}
