import type { Queryable } from '../pool.js';
import type { Role } from './tokens.js';

export interface OrganisationCertificateRecord {
  readonly serial: Buffer;
  readonly purpose: 'server' | 'client' | 'audit' | 'cmp' | 'internal-server' | 'internal-client';
  readonly subjectDn: string;
  readonly role: Role | null;
  readonly manufacturerId: string | null;
  readonly keyId: Buffer;
  readonly certificate: Buffer;
  readonly notAfter: Date;
  readonly revokedAt: Date | null;
  /** Client certificates: the person the certificate stands for, and who had it issued. */
  readonly personId?: string | null;
  readonly personName?: string | null;
  readonly createdBy?: string | null;
  /** Internal TLS certificates (migrations/0044): the part and the host (a, b, witness) it serves. */
  readonly tlsPart?: string | null;
  readonly tlsHost?: string | null;
}

export async function insertOrganisationCertificate(db: Queryable, c: Omit<OrganisationCertificateRecord, 'revokedAt' | 'personName'>): Promise<void> {
  // A service's own certificate (CMP protection, audit key) goes through the one function the services
  // may call (migrations/0026): it takes no person and no role, so no service records a credential.
  if ((c.purpose === 'cmp' || c.purpose === 'audit') && !c.role && !c.personId) {
    await db.query('SELECT fp_service_certificate_record($1, $2, $3, $4, $5, $6)', [c.serial, c.purpose, c.subjectDn, c.keyId, c.certificate, c.notAfter]);
    return;
  }
  await db.query(
    `INSERT INTO organisation_certificates (serial, purpose, subject_dn, role, manufacturer_id, key_id, certificate, not_after, person_id, created_by, tls_part, tls_host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [c.serial, c.purpose, c.subjectDn, c.role, c.manufacturerId, c.keyId, c.certificate, c.notAfter, c.personId ?? null, c.createdBy ?? null, c.tlsPart ?? null, c.tlsHost ?? null],
  );
}

/**
 * Commits an organisation certificate's intent before the organisation CA's key signs it: its serial,
 * purpose and the SHA-256 of its linted TBS (migrations/0041), in the caller's transaction.
 */
export async function recordOrganisationIntent(db: Queryable, intent: { serial: Buffer; purpose: OrganisationCertificateRecord['purpose']; tbsSha256: Buffer }): Promise<void> {
  await db.query('SELECT fp_organisation_intent_record($1, $2, $3)', [intent.serial, intent.purpose, intent.tbsSha256]);
}

export async function getOrganisationCertificate(db: Queryable, serial: Buffer): Promise<OrganisationCertificateRecord | undefined> {
  const { rows } = await db.query(
    `SELECT c.serial, c.purpose, c.subject_dn, coalesce(p.role, c.role) AS role, c.manufacturer_id, c.key_id, c.certificate, c.not_after, coalesce(c.revoked_at, p.disabled_at) AS revoked_at, c.person_id, p.name AS person_name, c.created_by, c.tls_part, c.tls_host
       FROM organisation_certificates c LEFT JOIN people p ON p.id = c.person_id WHERE c.serial = $1`,
    [serial],
  );
  const r = rows[0] as Record<string, unknown> | undefined;
  return (
    r && {
      serial: r.serial as Buffer,
      purpose: r.purpose as OrganisationCertificateRecord['purpose'],
      subjectDn: r.subject_dn as string,
      role: (r.role as Role | null) ?? null,
      manufacturerId: (r.manufacturer_id as string | null) ?? null,
      keyId: r.key_id as Buffer,
      certificate: r.certificate as Buffer,
      notAfter: r.not_after as Date,
      revokedAt: (r.revoked_at as Date | null) ?? null,
      personId: (r.person_id as string | null) ?? null,
      personName: (r.person_name as string | null) ?? null,
      createdBy: (r.created_by as string | null) ?? null,
      tlsPart: (r.tls_part as string | null) ?? null,
      tlsHost: (r.tls_host as string | null) ?? null,
    }
  );
}

export async function insertAuditKey(db: Queryable, key: { keyId: Buffer; site: string; keyLabel: string; certificate: Buffer }): Promise<void> {
  await db.query(`INSERT INTO audit_keys (key_id, site, key_label, certificate) VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING`, [key.keyId, key.site, key.keyLabel, key.certificate]);
}

export async function listAuditKeys(db: Queryable): Promise<{ keyId: Buffer; site: string; keyLabel: string; certificate: Buffer }[]> {
  const { rows } = await db.query<{ key_id: Buffer; site: string; key_label: string; certificate: Buffer }>('SELECT key_id, site, key_label, certificate FROM audit_keys ORDER BY created_at');
  return rows.map((r) => ({ keyId: r.key_id, site: r.site, keyLabel: r.key_label, certificate: r.certificate }));
}

/** True when it existed and was not revoked yet. */
export async function revokeOrganisationCertificate(db: Queryable, serial: Buffer): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE organisation_certificates SET revoked_at = now() WHERE serial = $1 AND revoked_at IS NULL', [serial]);
  return rowCount === 1;
}

/** The newest live certificate of `purpose` for the key `keyId` (a site's CMP protection key), if any. */
export async function findOrganisationCertificateByKey(db: Queryable, purpose: OrganisationCertificateRecord['purpose'], keyId: Buffer): Promise<Buffer | undefined> {
  const { rows } = await db.query<{ certificate: Buffer }>(
    `SELECT certificate FROM organisation_certificates WHERE purpose = $1 AND key_id = $2 AND revoked_at IS NULL AND not_after > now() ORDER BY not_after DESC LIMIT 1`,
    [purpose, keyId],
  );
  return rows[0]?.certificate;
}
