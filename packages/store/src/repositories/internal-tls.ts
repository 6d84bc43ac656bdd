import type { Queryable } from '../pool.js';

/** An internal TLS certificate (migrations/0044): one host's pair for one part of the deployment. */
export interface InternalTlsRecord {
  readonly serial: Buffer;
  readonly purpose: 'internal-server' | 'internal-client';
  readonly part: string;
  readonly host: string;
  readonly certificate: Buffer;
  readonly notAfter: Date;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
  readonly supersededAt: Date | null;
  readonly supersededBy: Buffer | null;
}

/** Every internal TLS certificate, current and superseded, the newest first within a host's part. */
export async function listInternalTlsCertificates(db: Queryable): Promise<InternalTlsRecord[]> {
  const { rows } = await db.query<{ serial: Buffer; purpose: InternalTlsRecord['purpose']; tls_part: string; tls_host: string; certificate: Buffer; not_after: Date; created_at: Date; revoked_at: Date | null; superseded_at: Date | null; superseded_by: Buffer | null }>(
    `SELECT serial, purpose, tls_part, tls_host, certificate, not_after, created_at, revoked_at, superseded_at, superseded_by
       FROM organisation_certificates WHERE tls_part IS NOT NULL ORDER BY tls_host, tls_part, created_at DESC, serial`,
  );
  return rows.map((r) => ({ serial: r.serial, purpose: r.purpose, part: r.tls_part, host: r.tls_host, certificate: r.certificate, notAfter: r.not_after, createdAt: r.created_at, revokedAt: r.revoked_at, supersededAt: r.superseded_at, supersededBy: r.superseded_by }));
}

/**
 * Marks the current certificate of `host`'s `part` superseded by `by` (stored in the same transaction,
 * after this: the reference is checked at commit). Returns the serials it marked: none, or the one.
 */
export async function supersedeInternalTls(db: Queryable, change: { host: string; part: string; by: Buffer }): Promise<Buffer[]> {
  const { rows } = await db.query<{ serial: Buffer }>(
    'UPDATE organisation_certificates SET superseded_at = now(), superseded_by = $3 WHERE tls_host = $1 AND tls_part = $2 AND superseded_at IS NULL RETURNING serial',
    [change.host, change.part, change.by],
  );
  return rows.map((r) => r.serial);
}
