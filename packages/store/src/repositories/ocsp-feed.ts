import type { Queryable } from '../pool.js';
import type { CertificateStatusRow, StoredOcspResponse } from './revocations.js';

/** A stored response with its certificate's status now. */
export interface StoredOcspResponseWithStatus {
  readonly stored: StoredOcspResponse;
  readonly certificate: CertificateStatusRow;
  /** Its position in the feed (migrations/0042); null for a row stored before there was one. */
  readonly seq: string | null;
}

/** A page of stored responses and the revocation generation of the same snapshot (one statement). */
export interface StoredOcspResponsePage {
  readonly generation: number;
  readonly rows: readonly StoredOcspResponseWithStatus[];
}

type Row = { g: string; serial: Buffer; hash_alg: 'sha1' | 'sha256'; status: 'good' | 'revoked'; this_update: Date; next_update: Date; der: Buffer; seq: string | null; ca_id: string; revoked_at: Date | null; reason: number | null };

// The generation is read in the same statement as the statuses (one snapshot), as lookupOcsp does: a
// "good" loaded from a page is served only while the generation is still this one.
const PAGE_SELECT = `SELECT g.generation::text AS g, o.serial, o.hash_alg, o.status, o.this_update, o.next_update, o.der, o.stored_seq::text AS seq, c.ca_id, r.revoked_at, r.reason
       FROM revocation_generation g
       CROSS JOIN (SELECT o.* FROM ocsp_responses o WHERE %WHERE% ORDER BY %ORDER% LIMIT $LIMIT) o
       JOIN certificates c ON c.serial = o.serial
       LEFT JOIN revocations r ON r.serial = o.serial
      ORDER BY %OUTER_ORDER%`;

async function page(db: Queryable, where: string, order: string, outerOrder: string, params: unknown[], limit: number): Promise<StoredOcspResponsePage> {
  const sql = PAGE_SELECT.replace('%WHERE%', where).replace('%ORDER%', order).replace('%OUTER_ORDER%', outerOrder).replace('$LIMIT', `$${params.length + 1}`);
  const { rows } = await db.query<Row>(sql, [...params, limit]);
  if (rows.length === 0) {
    const { rows: g } = await db.query<{ g: string }>('SELECT generation::text AS g FROM revocation_generation');
    return { generation: Number(g[0]!.g), rows: [] };
  }
  return {
    generation: Number(rows[0]!.g),
    rows: rows.map((r) => ({
      stored: { serial: r.serial, hashAlg: r.hash_alg, status: r.status, thisUpdate: r.this_update, nextUpdate: r.next_update, der: r.der },
      certificate: { serial: r.serial, caId: r.ca_id, revokedAt: r.revoked_at, reason: r.reason },
      seq: r.seq,
    })),
  };
}

/**
 * Stored responses in (serial, hash algorithm) order after `after`, only those valid beyond
 * `validBeyond`: a responder's warm-up at start, page by page.
 */
export function storedOcspResponsesBySerial(db: Queryable, after: { serial: Buffer; hashAlg: 'sha1' | 'sha256' } | undefined, validBeyond: Date, limit: number): Promise<StoredOcspResponsePage> {
  return page(db, 'o.next_update > $1 AND (o.serial, o.hash_alg) > ($2::bytea, $3::text)', 'o.serial, o.hash_alg', 'o.serial, o.hash_alg', [validBeyond, after?.serial ?? Buffer.alloc(0), after?.hashAlg ?? ''], limit);
}

/**
 * Responses stored after position `afterSeq` of the feed, in feed order: what the daemons (and other
 * responders) wrote since a responder last looked. A row whose writer committed after a later position
 * was read is not seen here (positions are taken at write, not at commit): it is loaded on its first
 * request, as without the feed.
 */
export function storedOcspResponsesSince(db: Queryable, afterSeq: string, limit: number): Promise<StoredOcspResponsePage> {
  return page(db, 'o.stored_seq > $1::bigint', 'o.stored_seq', 'o.stored_seq', [afterSeq], limit);
}

/** The feed's last position written (0 before any): where a responder starting now follows from. */
export async function ocspResponseFeedPosition(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ seq: string }>('SELECT coalesce(max(stored_seq), 0)::text AS seq FROM ocsp_responses');
  return rows[0]!.seq;
}
