import { FleetError, type SiteId } from '@fleetpki/core';
import type { Pool } from '@fleetpki/store';
import { accessStoreOf } from './postgres-store.js';
import type { OrganisationCertificateStore } from './store.js';
import { auditActor, type Principal } from './api-tokens.js';
import { assertTwoPeopleTogether } from './dual-control.js';

/**
 * Mutual TLS: a client certificate from the organisation CA stands for a role (and a manufacturer for
 * factories) the way a token does. TLS has already checked the chain to the organisation CA; this
 * checks that fleetpki issued exactly this certificate for a client, and that it is neither revoked nor
 * expired. Cached for a few seconds like tokens, so a revocation takes effect within `cacheMs`.
 */
export class ClientCertificateAuthenticator {
  /** `internal`: the certificate is one of the deployment's internal TLS pairs (its part and host), refused as such. */
  private readonly cache = new Map<string, { principal: Principal | null; internal?: string; until: number }>();
  private readonly store: Pick<OrganisationCertificateStore, 'getOrganisationCertificate'>;

  /** `db`: the port (a Pool still works for callers not moved to ports yet). */
  constructor(
    db: Pick<OrganisationCertificateStore, 'getOrganisationCertificate'> | Pool,
    private readonly cacheMs = 5_000,
  ) {
    this.store = accessStoreOf(db);
  }

  async authenticate(peer: { raw: Buffer; serialNumber: string }): Promise<Principal> {
    const serialHex = peer.serialNumber.toLowerCase().replace(/^0+(?=..)/, '');
    const now = Date.now();
    let entry = this.cache.get(serialHex);
    if (!entry || entry.until <= now) {
      const serial = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
      const record = await this.store.getOrganisationCertificate(serial);
      const usable = record && record.purpose === 'client' && !record.revokedAt && record.notAfter.getTime() > now && record.certificate.equals(peer.raw) && record.role && record.personId;
      // Refused like any non-client certificate, under a code of its own: in the audit log, an internal
      // key presented to the API says a host's key was taken, which a stray certificate does not.
      const internal = record?.tlsPart && record.certificate.equals(peer.raw) ? `${record.tlsPart} (host ${record.tlsHost})` : undefined;
      entry = { principal: usable ? { credential: `cert:${serialHex}`, proof: `cert:${serialHex}`, personId: record.personId!, name: record.personName ?? serialHex, role: record.role!, manufacturerId: record.manufacturerId } : null, ...(internal ? { internal } : {}), until: now + this.cacheMs };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(serialHex, entry);
    }
    // Made only when thrown, as in TokenAuthenticator: a stack trace per request is not free.
    if (entry.internal) throw new FleetError('CLIENT_CERT_INTERNAL', `the client certificate is the internal TLS certificate of ${entry.internal}, a part of the deployment, not a person's credential`, { httpStatus: 401 });
    if (!entry.principal) throw new FleetError('CLIENT_CERT_INVALID', 'the client certificate is not one fleetpki issued for an API client, or it is revoked or expired', { httpStatus: 401 });
    return entry.principal;
  }
}

/**
 * Organisation certificates whose revocation takes two administrators together: the site's CMP
 * protection certificate and the audit keys' (revoking one silences CMP, or audit sealing, for everyone).
 */
export const TWO_ADMINISTRATOR_PURPOSES: readonly string[] = ['cmp', 'audit'];

/**
 * Revokes an organisation certificate (a person's client certificate, a server's, the CMP or an audit
 * key's) as the administrators given: one, or two together with nobody in common for the purposes above.
 * Refused within the authenticators' cache time (5 s).
 */
export async function revokeOrganisationCertificateAs(db: OrganisationCertificateStore | Pool, site: SiteId, serialHex: string, administrators: readonly Principal[]): Promise<{ purpose: string }> {
  if (!/^[0-9a-f]{2,40}$/i.test(serialHex)) throw new FleetError('SERIAL_INVALID', `"${serialHex.slice(0, 40)}" is not a hex serial`, { httpStatus: 400 });
  const what = `revoking organisation certificate ${serialHex.toLowerCase()}`;
  const [first, second] = administrators;
  if (!first) throw new FleetError('AUTH_REQUIRED', `${what} is for an administrator`, { httpStatus: 401 });
  for (const p of administrators) if (p.role !== 'administrator') throw new FleetError('ROLE_FORBIDDEN', `${what} is for an administrator; ${p.name} is ${p.role}`, { httpStatus: 403 });
  const store: OrganisationCertificateStore = accessStoreOf(db);
  const serial = Buffer.from(serialHex, 'hex');
  const record = await store.getOrganisationCertificate(serial);
  if (!record || record.revokedAt) throw new FleetError('CERTIFICATE_NOT_FOUND', `no live organisation certificate ${serialHex}`, { httpStatus: 404 });
  if (TWO_ADMINISTRATOR_PURPOSES.includes(record.purpose)) {
    if (!second) throw new FleetError('DUAL_CONTROL_REQUIRED', `${what} (the ${record.purpose} certificate) takes two administrators together`, { httpStatus: 403 });
    await assertTwoPeopleTogether(store, first, second, ['administrator'], what);
  }
  const audit = { site, actor: administrators.map(auditActor).join(' + '), action: 'org-certificate.revoke', subject: serialHex.toLowerCase(), details: { purpose: record.purpose, subject: record.subjectDn } };
  if (!(await store.revokeOrganisationCertificate(serial, audit))) throw new FleetError('CERTIFICATE_NOT_FOUND', `no live organisation certificate ${serialHex}`, { httpStatus: 404 });
  return { purpose: record.purpose };
}
