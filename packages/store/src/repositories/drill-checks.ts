import type { Queryable } from '../pool.js';

/** Verification queries of the site drills, run on the site that took over. */

/** Of these serials (hex), how many have no certificate here: the recovery point, in certificates. */
export async function countMissingCertificates(db: Queryable, serialsHex: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM unnest($1::text[]) AS s(hex) WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = decode(s.hex, 'hex'))`,
    [serialsHex],
  );
  return rows[0]!.n;
}

/** Devices of a batch with other than exactly one certificate per requested key role. */
export async function batchDevicesNotExactlyOne(db: Queryable, batchId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (
       SELECT i.eui64, i.key_role, count(c.serial) AS certs
         FROM batch_items i LEFT JOIN certificates c ON c.eui64 = i.eui64 AND c.key_role = i.key_role AND c.batch_id = i.batch_id
        WHERE i.batch_id = $1 AND i.error_code IS NULL
        GROUP BY i.eui64, i.key_role) t
     WHERE certs <> 1`,
    [batchId],
  );
  return rows[0]!.n;
}

/**
 * (device, role, profile) holding more than one certificate in force: a duplicate issuance. A
 * certificate revoked, or superseded by a re-enrolment (EST), has a legitimate successor.
 */
export async function countDuplicateIssuance(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (
       SELECT 1 FROM certificates c JOIN issuance_intents i ON i.serial = c.serial
        WHERE i.renewed_at IS NULL AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
        GROUP BY c.eui64, c.key_role, c.profile HAVING count(*) > 1) d`,
  );
  return rows[0]!.n;
}

export async function highestCrlNumber(db: Queryable, caId: string): Promise<bigint> {
  const { rows } = await db.query<{ n: string | null }>(`SELECT max(crl_number)::text AS n FROM crls WHERE ca_id = $1`, [caId]);
  return BigInt(rows[0]!.n ?? 0);
}

/** Certificates issued by each site's serial prefix (first serial byte) in a batch. */
export async function batchCertificatesBySerialPrefix(db: Queryable, batchId: string): Promise<Map<number, number>> {
  const { rows } = await db.query<{ prefix: number; n: number }>(`SELECT get_byte(serial, 0) AS prefix, count(*)::int AS n FROM certificates WHERE batch_id = $1 GROUP BY 1`, [batchId]);
  return new Map(rows.map((r) => [r.prefix, r.n]));
}

export async function countCertificates(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM certificates');
  return rows[0]!.n;
}
