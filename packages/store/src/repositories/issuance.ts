import type { Pool, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';

export interface IntentRow {
  readonly serial: Buffer;
  readonly caId: string;
  readonly eui64: Buffer;
  readonly keyRole: string;
  readonly profile: string;
  readonly tbsSha256: Buffer;
  readonly manufacturerId: string;
  readonly deviceType: string;
  readonly batchId?: string | null;
  readonly chunkNo?: number | null;
}

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
  readonly batchId?: string | null;
}

/**
 * Commits issuance intents (and their devices) before anything is signed. An intent is refused when its
 * device belongs to another manufacturer or its (device, key role, profile) already has a live
 * certificate; the caller learns which serials were recorded. Many intents share one transaction, so
 * concurrent enrolments pay for one synchronous-replication round trip together.
 */
export async function recordIntents(pool: Pool, site: 'a' | 'b', actor: string, intents: readonly IntentRow[]): Promise<Set<string>> {
  if (intents.length === 0) return new Set();
  return withTransaction(pool, async (client) => {
    await client.query(
      `INSERT INTO devices (eui64, manufacturer_id, device_type, batch_id)
       SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::uuid[]) ON CONFLICT (eui64) DO NOTHING`,
      [intents.map((i) => i.eui64), intents.map((i) => i.manufacturerId), intents.map((i) => i.deviceType), intents.map((i) => i.batchId ?? null)],
    );
    const { rows } = await client.query<{ serial: Buffer }>(
      `INSERT INTO issuance_intents (serial, ca_id, eui64, key_role, profile, tbs_sha256, batch_id, chunk_no, site)
       SELECT t.serial, t.ca_id, t.eui64, t.key_role, t.profile, t.tbs_sha256, t.batch_id, t.chunk_no, $10
         FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::bytea[], $7::uuid[], $8::int[], $9::text[])
              AS t(serial, ca_id, eui64, key_role, profile, tbs_sha256, batch_id, chunk_no, manufacturer_id)
         JOIN devices d ON d.eui64 = t.eui64 AND d.manufacturer_id = t.manufacturer_id
       ON CONFLICT (eui64, key_role, profile) WHERE active DO NOTHING
       RETURNING serial`,
      [
        intents.map((i) => i.serial),
        intents.map((i) => i.caId),
        intents.map((i) => i.eui64),
        intents.map((i) => i.keyRole),
        intents.map((i) => i.profile),
        intents.map((i) => i.tbsSha256),
        intents.map((i) => i.batchId ?? null),
        intents.map((i) => i.chunkNo ?? null),
        intents.map((i) => i.manufacturerId),
        site,
      ],
    );
    const recorded = new Set(rows.map((r) => r.serial.toString('hex')));
    await appendAuditEvents(
      client,
      intents
        .filter((i) => recorded.has(i.serial.toString('hex')))
        .map((i) => ({ site, actor, action: 'issuance.intent', subject: i.serial.toString('hex'), details: { eui64: i.eui64.toString('hex').toUpperCase(), keyRole: i.keyRole, profile: i.profile, tbsSha256: i.tbsSha256.toString('hex') } })),
    );
    return recorded;
  });
}

/** Stores signed certificates for recorded intents; a retry of the same serial is a no-op. */
export async function storeCertificates(pool: Pool, site: 'a' | 'b', actor: string, certificates: readonly CertificateRow[]): Promise<void> {
  if (certificates.length === 0) return;
  await withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ serial: Buffer }>(
      `INSERT INTO certificates (serial, ca_id, eui64, key_role, profile, der, not_before, not_after, crl_shard, batch_id)
       SELECT * FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[], $8::timestamptz[], $9::int[], $10::uuid[])
       ON CONFLICT (serial) DO NOTHING RETURNING serial`,
      [
        certificates.map((c) => c.serial),
        certificates.map((c) => c.caId),
        certificates.map((c) => c.eui64),
        certificates.map((c) => c.keyRole),
        certificates.map((c) => c.profile),
        certificates.map((c) => c.der),
        certificates.map((c) => c.notBefore),
        certificates.map((c) => c.notAfter),
        certificates.map((c) => c.crlShard),
        certificates.map((c) => c.batchId ?? null),
      ],
    );
    await appendAuditEvents(
      client,
      rows.map((r) => ({ site, actor, action: 'issuance.certificate', subject: r.serial.toString('hex') })),
    );
  });
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

/** Why an intent was not recorded: the device is another manufacturer's, or the role already has a certificate. */
export async function explainRefusedIntent(db: Queryable, eui64: Buffer, manufacturerId: string): Promise<'foreign-device' | 'already-enrolled'> {
  const { rows } = await db.query<{ manufacturer_id: string }>(`SELECT manufacturer_id FROM devices WHERE eui64 = $1`, [eui64]);
  return rows[0] && rows[0].manufacturer_id !== manufacturerId ? 'foreign-device' : 'already-enrolled';
}
