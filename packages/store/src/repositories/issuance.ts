import type { Pool, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';
import { findDeviceNotOwned, type DeviceRefusal } from './eui64-ranges.js';

/** An intent, online or a batch chunk's, with who asked (an online intent's audit row's actor). */
export interface IntentRow {
  readonly serial: Buffer;
  readonly caId: string;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly profile: string;
  readonly tbsSha256: Buffer;
  readonly manufacturerId: string;
  readonly deviceType: string;
  readonly actor: string;
  /** A batch certificate's notBefore, fixed with its intent (a chunk signed again signs the same TBS). */
  readonly notBefore?: Date;
}

/** An online enrolment's signed certificate, with who asked (its audit row's actor). */
export interface CertificateRow {
  readonly serial: Buffer;
  readonly caId: string;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly profile: string;
  readonly der: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly crlShard: number;
  readonly actor: string;
}

/**
 * The one intent writer (fp_record_intents, migrations 0024 and 0025): commits intents, and their devices,
 * before anything is signed, in one statement. An intent is refused when its device belongs to another
 * manufacturer or its (device, key role, profile) already has a live intent; the caller learns which
 * serials were recorded. Online, many concurrent enrolments share the statement (one synchronous-
 * replication round trip together) and each intent is audited; a batch chunk's intents (`chunk`) are
 * recorded inside the chunk's transaction and audited by it once.
 */
export async function recordIntents(db: Queryable, site: 'a' | 'b', intents: readonly IntentRow[], chunk?: { readonly batchId: string; readonly chunkNo: number }): Promise<Set<string>> {
  if (intents.length === 0) return new Set();
  const { rows } = await db.query<{ serial: Buffer }>('SELECT fp_record_intents AS serial FROM fp_record_intents($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)', [
    site,
    intents.map((i) => i.actor),
    intents.map((i) => i.serial),
    intents.map((i) => i.caId),
    intents.map((i) => i.eui64),
    intents.map((i) => i.keyRole),
    intents.map((i) => i.profile),
    intents.map((i) => i.tbsSha256),
    intents.map((i) => i.manufacturerId),
    intents.map((i) => i.deviceType),
    intents.map((i) => i.notBefore ?? null),
    chunk?.batchId ?? null,
    chunk?.chunkNo ?? null,
  ]);
  return new Set(rows.map((r) => r.serial.toString('hex')));
}

/**
 * Stores certificates whose intents are still active, in one statement (fp_store_certificates): an
 * intent the reconciler released (its process took longer than the intent timeout) gets no
 * certificate, so a device can never hold two. The intents are locked (FOR SHARE) first, so a release
 * and a store of one intent never both go through; a retry of the same serial is a no-op. Returns the
 * serials that were not stored because their intent was released.
 */
export async function storeCertificates(db: Queryable, site: 'a' | 'b', certificates: readonly CertificateRow[]): Promise<Set<string>> {
  if (certificates.length === 0) return new Set();
  const { rows } = await db.query<{ serial: Buffer }>('SELECT fp_store_certificates AS serial FROM fp_store_certificates($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)', [
    site,
    certificates.map((c) => c.actor),
    certificates.map((c) => c.serial),
    certificates.map((c) => c.caId),
    certificates.map((c) => c.eui64),
    certificates.map((c) => c.keyRole),
    certificates.map((c) => c.profile),
    certificates.map((c) => c.der),
    certificates.map((c) => c.notBefore),
    certificates.map((c) => c.notAfter),
    certificates.map((c) => c.crlShard),
  ]);
  return new Set(rows.map((r) => r.serial.toString('hex')));
}

/** The active online or batch enrolment of (device, role, profile), with its certificate and status if it has one. */
export interface ActiveEnrolment {
  readonly serial: Buffer;
  /** The site that recorded the intent. */
  readonly site: 'a' | 'b';
  readonly createdAt: Date;
  readonly ageSeconds: number;
  readonly batchId: string | null;
  readonly certificate: { readonly der: Buffer; readonly notBefore: Date; readonly notAfter: Date; readonly crlShard: number; readonly revoked: boolean } | null;
}

export async function findActiveEnrolment(db: Queryable, eui64: Buffer, keyRole: string, profile: string): Promise<ActiveEnrolment | undefined> {
  const { rows } = await db.query<{ serial: Buffer; site: 'a' | 'b'; created_at: Date; age: number; batch_id: string | null; der: Buffer | null; not_before: Date | null; not_after: Date | null; crl_shard: number | null; revoked: boolean }>(
    `SELECT i.serial, i.site, i.created_at, extract(epoch FROM clock_timestamp() - i.created_at)::float8 AS age, i.batch_id, c.der, c.not_before, c.not_after, c.crl_shard,
            EXISTS (SELECT 1 FROM revocations r WHERE r.serial = i.serial) AS revoked
       FROM issuance_intents i LEFT JOIN certificates c ON c.serial = i.serial
      WHERE i.eui64 = $1 AND i.key_role = $2 AND i.profile = $3 AND i.active`,
    [eui64, keyRole, profile],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    serial: r.serial,
    site: r.site,
    createdAt: r.created_at,
    ageSeconds: r.age,
    batchId: r.batch_id,
    certificate: r.der ? { der: r.der, notBefore: r.not_before!, notAfter: r.not_after!, crlShard: r.crl_shard!, revoked: r.revoked } : null,
  };
}

/**
 * Ends an intent so its device may enrol again, keeping the row (every signature stays accounted for):
 * 'revoked' when its certificate is revoked (a re-enrolment after revocation), 'stale' when an online
 * intent got no certificate within `olderThanSeconds` (a crash, an HSM error, a lost commit). The intent
 * is locked first and the condition checked after, so a certificate stored meanwhile wins.
 */
/**
 * revoked: its certificate was revoked; stale: no certificate after the timeout; renewed: superseded by
 * a re-enrolment; abandoned: recorded by the other site, which no longer acts as the CA site, so its
 * certificate can never be stored (its database is not the primary any more).
 */
export type RetireReason = { kind: 'revoked' } | { kind: 'stale'; olderThanSeconds: number } | { kind: 'renewed' } | { kind: 'abandoned'; bySite: 'a' | 'b' };

export async function retireIntent(pool: Pool, site: 'a' | 'b', actor: string, serial: Buffer, why: RetireReason): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const locked = await client.query('SELECT 1 FROM issuance_intents WHERE serial = $1 AND active FOR UPDATE', [serial]);
    if (locked.rowCount !== 1) return false;
    const { rows } = await client.query<{ has_certificate: boolean; revoked: boolean; age: number }>(
      `SELECT EXISTS (SELECT 1 FROM certificates WHERE serial = $1) AS has_certificate, EXISTS (SELECT 1 FROM revocations WHERE serial = $1) AS revoked,
              (SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM issuance_intents WHERE serial = $1) AS age`,
      [serial],
    );
    const state = rows[0]!;
    const ok =
      why.kind === 'revoked' ? state.revoked : why.kind === 'renewed' ? state.has_certificate && !state.revoked : why.kind === 'abandoned' ? !state.has_certificate : !state.has_certificate && state.age > why.olderThanSeconds;
    if (!ok) return false;
    const reason =
      why.kind === 'revoked'
        ? 'certificate revoked; the device enrols again'
        : why.kind === 'renewed'
          ? 'superseded by a re-enrolment of the device'
          : why.kind === 'abandoned'
            ? `recorded by site ${why.bySite}, which no longer acts as the CA site; its certificate was never stored`
            : `no certificate ${Math.round(state.age)} s after the intent (timeout ${why.olderThanSeconds} s)`;
    await client.query(`UPDATE issuance_intents SET active = false, released_at = clock_timestamp(), released_reason = $2, renewed_at = CASE WHEN $3 THEN clock_timestamp() END WHERE serial = $1`, [serial, reason, why.kind === 'renewed']);
    const action = why.kind === 'revoked' ? 'issuance.intent.superseded' : why.kind === 'renewed' ? 'certificate.superseded' : 'issuance.intent.released';
    await appendAuditEvents(client, [{ site, actor, action, subject: serial.toString('hex'), details: { reason } }]);
    return true;
  });
}

/** A stored device certificate with where it stands: the one a re-enrolling device presents. */
export interface PresentedCertificate {
  readonly serial: Buffer;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly profile: string;
  readonly der: Buffer;
  readonly manufacturerId: string;
  readonly revoked: boolean;
  /** Its intent is the live one of (device, role, profile). */
  readonly live: boolean;
  /** Superseded by a re-enrolment (not live, not revoked). */
  readonly renewed: boolean;
}

export async function findPresentedCertificate(db: Queryable, serial: Buffer): Promise<PresentedCertificate | undefined> {
  const { rows } = await db.query<{ eui64: Buffer; key_role: string; profile: string; der: Buffer; manufacturer_id: string; revoked: boolean; active: boolean; renewed: boolean }>(
    `SELECT c.eui64, c.key_role, c.profile, c.der, d.manufacturer_id, i.active, i.renewed_at IS NOT NULL AS renewed,
            EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) AS revoked
       FROM certificates c JOIN issuance_intents i ON i.serial = c.serial JOIN devices d ON d.eui64 = c.eui64
      WHERE c.serial = $1`,
    [serial],
  );
  const r = rows[0];
  return r ? { serial, eui64: r.eui64, keyRole: r.key_role, profile: r.profile, der: r.der, manufacturerId: r.manufacturer_id, revoked: r.revoked, live: r.active, renewed: r.renewed } : undefined;
}

/**
 * Certificates superseded by a re-enrolment more than `graceSeconds` ago and not yet revoked: only a
 * stored certificate with a successor (a certificate of the same device and key role issued after it).
 * `renewed_at` alone is not enough: the issuer role may write it, and intents without a certificate
 * or without a successor marked renewed would otherwise come back first on every pass, keeping the
 * daemon busy for nothing (an outside review, issue 37) or revoking a device's only certificate.
 */
export async function supersededUnrevoked(db: Queryable, graceSeconds: number, limit = 1_000): Promise<Buffer[]> {
  const { rows } = await db.query<{ serial: Buffer }>(
    `SELECT i.serial FROM issuance_intents i JOIN certificates c ON c.serial = i.serial
      WHERE i.renewed_at IS NOT NULL AND i.renewed_at < clock_timestamp() - make_interval(secs => $1)
        AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = i.serial)
        AND EXISTS (SELECT 1 FROM certificates n WHERE n.eui64 = c.eui64 AND n.key_role = c.key_role AND n.issued_at > c.issued_at)
      ORDER BY i.renewed_at LIMIT $2`,
    [graceSeconds, limit],
  );
  return rows.map((r) => r.serial);
}

/** One pass of the online-intent reconciler over a window of creation times (staleOnlineIntents). */
export interface StaleIntentScan {
  /** Online intents past the timeout, still active and without a certificate, oldest first. */
  readonly serials: Buffer[];
  /**
   * Where the next pass may start: every active online intent created before it (and visible now) was
   * looked at. The time horizon (now - timeout, by the database's clock) when the pass finished its
   * window, the last row's creation time when it stopped at the limit.
   */
  readonly scannedUntil: Date;
}

/**
 * Online intents (not a batch's) still without a certificate after `olderThanSeconds`: the reconciler's
 * work. `createdFrom` bounds the scan to intents created since a previous pass's `scannedUntil`, through
 * the partial index on open online intents. Unbounded, the scan reads every live online intent and
 * anti-joins certificates: that is every device enrolled online, so it grows with the fleet (169 ms a
 * pass at 144,000 intents, in every issuer-api process every 10 s).
 */
export async function staleOnlineIntents(db: Queryable, olderThanSeconds: number, createdFrom: Date | null, limit = 1_000): Promise<StaleIntentScan> {
  const { rows } = await db.query<{ serial: Buffer | null; created_at: Date | null; horizon: Date }>(
    `WITH h AS (SELECT clock_timestamp() - make_interval(secs => $1) AS horizon)
     SELECT s.serial, s.created_at, h.horizon FROM h LEFT JOIN LATERAL (
       SELECT i.serial, i.created_at FROM issuance_intents i
        WHERE i.batch_id IS NULL AND i.active AND i.created_at < h.horizon AND ($2::timestamptz IS NULL OR i.created_at >= $2)
          AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial)
        ORDER BY i.created_at LIMIT $3) s ON true`,
    [olderThanSeconds, createdFrom, limit],
  );
  const found = rows.filter((r) => r.serial !== null);
  const horizon = rows[0]!.horizon;
  return { serials: found.map((r) => r.serial!), scannedUntil: found.length === limit ? found[found.length - 1]!.created_at! : horizon };
}

export interface StoredCertificate {
  readonly serial: Buffer;
  readonly caId: string;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly profile: string;
  readonly der: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly crlShard: number;
  readonly batchId: string | null;
  readonly issuedAt: Date;
  readonly manufacturerId: string;
  readonly revocation: { readonly reason: number; readonly revokedAt: Date } | null;
}

const CERTIFICATE_COLUMNS = `c.serial, c.ca_id, c.eui64, c.key_role, c.profile, c.der, c.not_before, c.not_after, c.crl_shard, c.batch_id, c.issued_at,
  d.manufacturer_id, r.reason, r.revoked_at`;

interface CertificateJoinRow {
  serial: Buffer;
  ca_id: string;
  eui64: Buffer;
  key_role: string;
  profile: string;
  der: Buffer;
  not_before: Date;
  not_after: Date;
  crl_shard: number;
  batch_id: string | null;
  issued_at: Date;
  manufacturer_id: string;
  reason: number | null;
  revoked_at: Date | null;
}

function toStored(r: CertificateJoinRow): StoredCertificate {
  return {
    serial: r.serial,
    caId: r.ca_id,
    eui64: r.eui64,
    keyRole: r.key_role,
    profile: r.profile,
    der: r.der,
    notBefore: r.not_before,
    notAfter: r.not_after,
    crlShard: r.crl_shard,
    batchId: r.batch_id,
    issuedAt: r.issued_at,
    manufacturerId: r.manufacturer_id,
    revocation: r.reason === null ? null : { reason: r.reason, revokedAt: r.revoked_at! },
  };
}

export async function getCertificate(db: Queryable, serial: Buffer): Promise<StoredCertificate | undefined> {
  const { rows } = await db.query<CertificateJoinRow>(
    `SELECT ${CERTIFICATE_COLUMNS} FROM certificates c JOIN devices d ON d.eui64 = c.eui64 LEFT JOIN revocations r ON r.serial = c.serial WHERE c.serial = $1`,
    [serial],
  );
  return rows[0] && toStored(rows[0]);
}

export async function listDeviceCertificates(db: Queryable, eui64: Buffer): Promise<StoredCertificate[]> {
  const { rows } = await db.query<CertificateJoinRow>(
    `SELECT ${CERTIFICATE_COLUMNS} FROM certificates c JOIN devices d ON d.eui64 = c.eui64 LEFT JOIN revocations r ON r.serial = c.serial WHERE c.eui64 = $1 ORDER BY c.issued_at, c.serial`,
    [eui64],
  );
  return rows.map(toStored);
}

/** Why an intent was not recorded: the device is not the manufacturer's (outside its ranges, or another's), or the role already has one. */
export async function explainRefusedIntent(db: Queryable, eui64: Buffer, manufacturerId: string): Promise<DeviceRefusal | 'already-enrolled'> {
  return (await findDeviceNotOwned(db, manufacturerId, [eui64]))?.refusal ?? 'already-enrolled';
}
