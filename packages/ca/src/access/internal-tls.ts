import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { FleetError, TLS_PARTS, type EtcdMemberName, type SiteId, type TlsPart } from '@fleetpki/core';
import type { KeyStore } from '@fleetpki/hsm';
import type { InternalTlsRecord, Pool } from '@fleetpki/store';
import { issueOrganisationCertificate } from './organisation-issuer.js';
import { accessStoreOf } from './postgres-store.js';
import type { InternalTlsStore } from './store.js';

/**
 * The deployment's own TLS certificates (issue 34, `fleetpki tls internal`): one pair per host and part
 * (config tls.<part>), from the organisation CA, recorded and audited as every organisation certificate.
 * Each part's extended key usages are the fewest its links need, so that a pair stolen from one part
 * cannot be presented in a role that part never plays:
 * - api, status: servers only. Meters, factories and operators connect to them; they dial nothing with it.
 * - postgres: server only. Clients and the standby's replication authenticate with scram-sha-256
 *   passwords over TLS (pg_hba.conf); libpq presents no client certificate.
 * - redis: server only. Clients are not asked for certificates (tls-auth-clients no: ACL passwords),
 *   and the queue has no replicas.
 * - etcd: server and client. etcd 3.4's gRPC gateway dials the member's own client port presenting this
 *   certificate when --client-cert-auth is on: with serverAuth alone every JSON /v3 call fails, logged
 *   as "certificate specifies an incompatible key usage" (measured on etcd 3.4.23).
 * - etcdPeer: server and client. Each member serves its peers and dials them (--peer-client-cert-auth).
 * - etcdClient: client only, no subjectAltName, no common name (its host in the OU): this host's processes
 *   and its Patroni towards etcd. etcd's JSON gateway, which Patroni uses, refuses a client certificate
 *   with a common name (HTTP 400), and a CN naming an etcd user would be that user's login without a password.
 */
export const INTERNAL_TLS_PROFILES: Readonly<Record<TlsPart, { readonly purpose: 'internal-server' | 'internal-client'; readonly clientAuthToo: boolean }>> = {
  api: { purpose: 'internal-server', clientAuthToo: false },
  status: { purpose: 'internal-server', clientAuthToo: false },
  postgres: { purpose: 'internal-server', clientAuthToo: false },
  redis: { purpose: 'internal-server', clientAuthToo: false },
  etcd: { purpose: 'internal-server', clientAuthToo: true },
  etcdPeer: { purpose: 'internal-server', clientAuthToo: true },
  etcdClient: { purpose: 'internal-client', clientAuthToo: false },
};

export const INTERNAL_TLS_HOSTS: readonly EtcdMemberName[] = ['a', 'b', 'witness'];
/** Validity bounds in days: at most web PKI's cap for a TLS server (397), which the links never need more than. */
export const INTERNAL_TLS_MAX_DAYS = 397;
const DAY_MS = 86_400_000;

export function internalTlsPart(value: string): TlsPart {
  if (!(TLS_PARTS as readonly string[]).includes(value)) throw new FleetError('INTERNAL_TLS_PART_UNKNOWN', `"${value}" is not a part with TLS; one of ${TLS_PARTS.join(', ')}`, { httpStatus: 400 });
  return value as TlsPart;
}

export function internalTlsHost(value: string): EtcdMemberName {
  if (!(INTERNAL_TLS_HOSTS as readonly string[]).includes(value)) throw new FleetError('INTERNAL_TLS_HOST_UNKNOWN', `"${value}" is not a host of the deployment; one of ${INTERNAL_TLS_HOSTS.join(', ')}`, { httpStatus: 400 });
  return value as EtcdMemberName;
}

export function internalTlsDays(days: number): number {
  if (!Number.isInteger(days) || days < 1 || days > INTERNAL_TLS_MAX_DAYS) throw new FleetError('INTERNAL_TLS_DAYS_INVALID', `validity must be a whole number of days, 1-${INTERNAL_TLS_MAX_DAYS}, got ${String(days)}`, { httpStatus: 400 });
  return days;
}

// RFC 1123 host names: labels of letters, digits and hyphens. No wildcard: a part's peers dial exact hosts.
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** The subjectAltName of a part's certificate: host names and IP addresses for a server, none for a client. */
export function internalTlsNames(part: TlsPart, names: readonly string[]): string[] {
  const given = [...new Set(names.map((n) => n.trim()).filter(Boolean))];
  if (INTERNAL_TLS_PROFILES[part].purpose === 'internal-client') {
    if (given.length) throw new FleetError('INTERNAL_TLS_NAMES_UNEXPECTED', `${part} is a client certificate: it names no hosts (got ${given.join(', ')})`, { httpStatus: 400 });
    return [];
  }
  if (!given.length) throw new FleetError('INTERNAL_TLS_NAMES_REQUIRED', `${part} is a server certificate: name the host names and IP addresses its clients dial (--names)`, { httpStatus: 400 });
  for (const name of given) {
    if (!isIP(name) && !HOST_NAME.test(name)) throw new FleetError('INTERNAL_TLS_NAME_INVALID', `"${name}" is neither a host name nor an IP address (no wildcards)`, { httpStatus: 400 });
  }
  return given;
}

export interface InternalTlsOrder {
  readonly part: TlsPart;
  readonly host: EtcdMemberName;
  readonly names: readonly string[];
  readonly days: number;
  readonly publicKeySpki: Buffer;
  readonly actor: string;
}

/**
 * Issues `host`'s certificate for `part`, superseding the current one (not revoking it: the running
 * process presents it until restarted). Bad input is refused before anything is recorded.
 */
export async function issueInternalTlsCertificate(db: InternalTlsStore | Pool, keyStore: Pick<KeyStore, 'getSigner'>, site: SiteId, order: InternalTlsOrder): Promise<{ der: Buffer; serial: Buffer; supersedes: Buffer | null }> {
  const profile = INTERNAL_TLS_PROFILES[internalTlsPart(order.part)];
  const host = internalTlsHost(order.host);
  const names = internalTlsNames(order.part, order.names);
  const days = internalTlsDays(order.days);
  const store: InternalTlsStore = accessStoreOf(db);
  const current = (await store.listInternalTlsCertificates()).find((c) => c.host === host && c.part === order.part && !c.supersededAt);
  const supersedes = current?.serial ?? null;
  const issued = await issueOrganisationCertificate(store, keyStore, site, {
    purpose: profile.purpose,
    subject: profile.purpose === 'internal-client' ? { organization: 'fleetpki', organizationalUnit: `internal tls ${order.part} ${host}` } : { organization: 'fleetpki', organizationalUnit: 'internal tls', commonName: `fleetpki ${order.part} ${host}` },
    publicKeySpki: order.publicKeySpki,
    days,
    ...(names.length ? { names } : {}),
    internal: { part: order.part, host, supersedes, clientAuthToo: profile.clientAuthToo },
    actor: order.actor,
  });
  return { der: issued.der, serial: issued.serial, supersedes };
}

/** An internal certificate as operators see it (`tls internal list`). */
export interface InternalTlsCertificate {
  readonly serial: string;
  readonly part: TlsPart;
  readonly host: EtcdMemberName;
  readonly purpose: 'internal-server' | 'internal-client';
  readonly names: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Whole days until notAfter (negative once expired). */
  readonly daysLeft: number;
  readonly state: 'current' | 'superseded';
  readonly supersededBy: string | null;
  readonly revoked: boolean;
  /** A current certificate that expires within the window, is expired, or was revoked: `rotate` replaces it. */
  readonly due: boolean;
}

/** Host names and IP addresses of a certificate's subjectAltName, as given to --names. */
function sanNames(certificate: X509Certificate): string[] {
  return (certificate.subjectAltName ?? '').split(', ').filter(Boolean).map((entry) => entry.replace(/^(DNS|IP Address):/, ''));
}

export function describeInternalTls(record: InternalTlsRecord, withinDays: number, now = new Date()): InternalTlsCertificate {
  const x509 = new X509Certificate(record.certificate);
  const daysLeft = Math.floor((record.notAfter.getTime() - now.getTime()) / DAY_MS);
  const current = record.supersededAt === null;
  return {
    serial: record.serial.toString('hex'),
    part: record.part as TlsPart,
    host: record.host as EtcdMemberName,
    purpose: record.purpose,
    names: sanNames(x509),
    notBefore: new Date(x509.validFrom),
    notAfter: record.notAfter,
    daysLeft,
    state: current ? 'current' : 'superseded',
    supersededBy: record.supersededBy?.toString('hex') ?? null,
    revoked: record.revokedAt !== null,
    due: current && (record.revokedAt !== null || record.notAfter.getTime() - now.getTime() <= withinDays * DAY_MS),
  };
}

export async function listInternalTls(db: InternalTlsStore | Pool, withinDays: number, now = new Date()): Promise<InternalTlsCertificate[]> {
  const store: InternalTlsStore = accessStoreOf(db);
  return (await store.listInternalTlsCertificates()).map((r) => describeInternalTls(r, withinDays, now));
}

/** What `rotate` re-issues: `host`'s current certificates that are due (of `part` only, when given), each with its names and validity. */
export function rotationPlan(certificates: readonly InternalTlsCertificate[], host: EtcdMemberName, part?: TlsPart): { part: TlsPart; serial: string; names: readonly string[]; days: number }[] {
  return certificates
    .filter((c) => c.host === host && c.due && (part === undefined || c.part === part))
    .map((c) => ({ part: c.part, serial: c.serial, names: c.names, days: Math.min(INTERNAL_TLS_MAX_DAYS, Math.max(1, Math.round((c.notAfter.getTime() - c.notBefore.getTime()) / DAY_MS))) }));
}
