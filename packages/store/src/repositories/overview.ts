import type { Queryable } from '../pool.js';

/** What an operator's overview shows of a CA's status publication, from one snapshot. */
export interface StatusPublication {
  readonly crlShards: number;
  /** The oldest full CRL shard's thisUpdate, and the earliest nextUpdate among the shards. */
  readonly oldestCrlThisUpdate: Date | null;
  readonly earliestCrlNextUpdate: Date | null;
  readonly crlEntries: number;
  /** Certificates of the last day with no pre-produced (SHA-1 CertID) OCSP response yet. */
  readonly ocspNotPreProduced: number;
  /** Revocations of the last day whose stored OCSP response still says good. */
  readonly ocspRevocationsNotResigned: number;
}

/**
 * Bounded to the last day so the overview stays a few index scans at any fleet size: older backlog
 * is a fault the status responder's own log reports.
 */
export async function readStatusPublication(db: Queryable, caId: string): Promise<StatusPublication> {
  const { rows } = await db.query<{ shards: number; oldest: Date | null; earliest: Date | null; entries: string | null; unproduced: number; unresigned: number }>(
    `SELECT (SELECT count(*)::int FROM crls WHERE ca_id = $1 AND kind = 'full') AS shards,
            (SELECT min(this_update) FROM crls WHERE ca_id = $1 AND kind = 'full') AS oldest,
            (SELECT min(next_update) FROM crls WHERE ca_id = $1) AS earliest,
            (SELECT sum(entries)::text FROM crls WHERE ca_id = $1 AND kind = 'full') AS entries,
            (SELECT count(*)::int FROM certificates c WHERE c.ca_id = $1 AND c.issued_at > now() - interval '1 day'
                AND NOT EXISTS (SELECT 1 FROM ocsp_responses o WHERE o.serial = c.serial AND o.hash_alg = 'sha1')) AS unproduced,
            (SELECT count(*)::int FROM revocations r JOIN ocsp_responses o ON o.serial = r.serial AND o.hash_alg = 'sha1' AND o.status = 'good'
               WHERE r.ca_id = $1 AND r.created_at > now() - interval '1 day') AS unresigned`,
    [caId],
  );
  const r = rows[0]!;
  return { crlShards: r.shards, oldestCrlThisUpdate: r.oldest, earliestCrlNextUpdate: r.earliest, crlEntries: Number(r.entries ?? 0), ocspNotPreProduced: r.unproduced, ocspRevocationsNotResigned: r.unresigned };
}
