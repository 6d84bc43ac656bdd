/* eslint-disable max-lines -- all SQL over revocations, CRL shards and OCSP responses in one file, so a change of those tables is made and reviewed in one place */
import { FleetError } from '@fleetpki/core';
import type { Pool, PoolClient, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import { appendAuditEvents } from './audit.js';

/** Which certificates a revocation request names. */
export type RevocationTarget =
  | { readonly kind: 'serials'; readonly serials: readonly Buffer[] }
  | { readonly kind: 'devices'; readonly eui64s: readonly Buffer[] }
  | { readonly kind: 'batch'; readonly batchId: string };

export interface RevocationOutcome {
  /** Certificates revoked by this request. */
  readonly revoked: number;
  /** Named certificates that were revoked before (idempotent: unchanged). */
  readonly alreadyRevoked: number;
  /** Serials or devices named that match no certificate (of this manufacturer, when scoped). */
  readonly notFound: readonly Buffer[];
  readonly shards: readonly number[];
}

const TARGET_SQL: Record<RevocationTarget['kind'], string> = {
  serials: 'SELECT c.serial, c.ca_id, c.crl_shard, c.eui64 FROM certificates c WHERE c.serial = ANY($1::bytea[])',
  devices: 'SELECT c.serial, c.ca_id, c.crl_shard, c.eui64 FROM certificates c WHERE c.eui64 = ANY($1::bytea[])',
  batch: 'SELECT c.serial, c.ca_id, c.crl_shard, c.eui64 FROM certificates c WHERE c.batch_id = $1::uuid',
};

export interface RevocationRequest {
  readonly target: RevocationTarget;
  readonly reason: number;
  readonly revokedAt: Date;
  readonly requestedBy: string;
  readonly manufacturerId: string | null;
  readonly site: 'a' | 'b';
  /** The person asking, and the approval that allowed it (null: none needed). */
  readonly personId?: string | null;
  readonly approvalId?: string | null;
  /**
   * The two-person threshold, counted in certificates and cumulative per person: what this request
   * would newly revoke plus what the person revoked without approval in the last `windowMinutes`.
   * Past it nothing is written and DUAL_CONTROL_THRESHOLD is thrown (the caller asks for approval).
   */
  readonly threshold?: { certificates: number; windowMinutes: number };
}

/** What a revocation would do, counted before anything is submitted (the console's preview). */
export interface RevocationPreview {
  /** Certificates the target names. */
  readonly certificates: number;
  readonly alreadyRevoked: number;
  /** certificates - alreadyRevoked: what the revocation would newly revoke (what dual control counts). */
  readonly wouldRevoke: number;
  /** Certificates per batch (null: issued online, outside any batch), largest first, at most 20. */
  readonly batches: readonly { batchId: string | null; certificates: number }[];
}

export async function previewRevocation(db: Queryable, target: RevocationTarget): Promise<RevocationPreview> {
  const param = target.kind === 'serials' ? target.serials : target.kind === 'devices' ? target.eui64s : target.batchId;
  const { rows } = await db.query<{ batch_id: string | null; certificates: number; revoked: number }>(
    `WITH t AS (${TARGET_SQL[target.kind]})
     SELECT c.batch_id::text AS batch_id, count(*)::int AS certificates, count(r.serial)::int AS revoked
       FROM t JOIN certificates c ON c.serial = t.serial LEFT JOIN revocations r ON r.serial = t.serial
      GROUP BY c.batch_id ORDER BY count(*) DESC`,
    [param],
  );
  const certificates = rows.reduce((n, r) => n + r.certificates, 0);
  const alreadyRevoked = rows.reduce((n, r) => n + r.revoked, 0);
  return { certificates, alreadyRevoked, wouldRevoke: certificates - alreadyRevoked, batches: rows.slice(0, 20).map((r) => ({ batchId: r.batch_id, certificates: r.certificates })) };
}

/** A batch is revoked in slices of this many certificates: bounded memory, an audit row per slice. */
export const REVOCATION_SLICE = 10_000;

/**
 * Revokes the named certificates: revocation rows (a certificate already revoked keeps its first reason
 * and time), the CRL shards they dirty, stored "good" OCSP responses for them deleted and the
 * revocation generation bumped (so no responder serves "good" for them once this returns), and an
 * audit event per transaction. Serials and devices in one transaction, or, past REVOCATION_SLICE when
 * no threshold applies (an approved request), in transactions of REVOCATION_SLICE in the list's order;
 * a batch in transactions of REVOCATION_SLICE certificates (in serial order). Both are resumable: a
 * retry skips what is revoked. `manufacturerId` limits it
 * to one manufacturer's devices (a factory revoking its own); null for revocation officers.
 */
export async function revokeCertificates(pool: Pool, request: RevocationRequest): Promise<RevocationOutcome> {
  if (request.target.kind !== 'batch') {
    const named = request.target.kind === 'serials' ? request.target.serials : request.target.eui64s;
    // Under a threshold the whole list is counted and inserted under one lock: one transaction.
    if ((request.threshold && request.personId) || named.length <= REVOCATION_SLICE) return withTransaction(pool, (client) => revokeInTransaction(client, request, request.target, true));
    return revokeListInSlices(pool, request, request.target.kind, named);
  }
  const batchId = request.target.batchId;
  let after: Buffer = Buffer.alloc(0);
  let total: RevocationOutcome = { revoked: 0, alreadyRevoked: 0, notFound: [], shards: [] };
  const shards = new Set<number>();
  for (let slice = 0; ; slice++) {
    const { rows } = await pool.query<{ serial: Buffer }>('SELECT serial FROM certificates WHERE batch_id = $1::uuid AND serial > $2 ORDER BY serial LIMIT $3', [batchId, after, REVOCATION_SLICE]);
    if (rows.length === 0 && slice > 0) break;
    const serials = rows.map((r) => r.serial);
    // The first slice checks the threshold for the whole batch (what is not yet revoked in it).
    const outcome = await withTransaction(pool, (client) => revokeInTransaction(client, request, { kind: 'serials', serials }, slice === 0, { batchId, slice }));
    total = { revoked: total.revoked + outcome.revoked, alreadyRevoked: total.alreadyRevoked + outcome.alreadyRevoked, notFound: [], shards: [] };
    for (const s of outcome.shards) shards.add(s);
    if (rows.length < REVOCATION_SLICE) break;
    after = serials[serials.length - 1]!;
  }
  return { ...total, shards: [...shards].sort((a, b) => a - b) };
}

/**
 * A long list (approved, or without a threshold) is revoked in transactions of REVOCATION_SLICE, in
 * order: the OCSP responders start re-signing the first slice while the next is inserted, instead of
 * after one long transaction (5 s for 100,000 devices). A failure leaves the slices before it revoked
 * (revocation only ever goes one way) and the request can be sent again: what is revoked is skipped.
 */
async function revokeListInSlices(pool: Pool, request: RevocationRequest, kind: 'serials' | 'devices', named: readonly Buffer[]): Promise<RevocationOutcome> {
  let revoked = 0;
  let alreadyRevoked = 0;
  const notFound: Buffer[] = [];
  const shards = new Set<number>();
  for (let at = 0, slice = 0; at < named.length; at += REVOCATION_SLICE, slice++) {
    const part = named.slice(at, at + REVOCATION_SLICE);
    const target: RevocationTarget = kind === 'serials' ? { kind, serials: part } : { kind, eui64s: part };
    const outcome = await withTransaction(pool, (client) => revokeInTransaction(client, request, target, false, { slice }));
    revoked += outcome.revoked;
    alreadyRevoked += outcome.alreadyRevoked;
    notFound.push(...outcome.notFound);
    for (const s of outcome.shards) shards.add(s);
  }
  return { revoked, alreadyRevoked, notFound, shards: [...shards].sort((a, b) => a - b) };
}

async function revokeInTransaction(
  client: PoolClient,
  request: RevocationRequest,
  target: RevocationTarget,
  checkThreshold: boolean,
  part?: { batchId?: string; slice: number },
): Promise<RevocationOutcome> {
  const batch = part?.batchId ? { batchId: part.batchId, slice: part.slice } : undefined;
  // Revocations commit one at a time (the mode conflicts with itself), so rows committed later always
  // carry a later created_at: the OCSP responder's (created_at, serial) cursor then never steps over a
  // revocation that was still committing, and the threshold below is counted without a race.
  // Bounded: a publisher (or anyone holding fp_lock_revocations) that never lets go must not hold an
  // officer's revocation for ever (migrations/0028 also ends such idle transactions after 30 s).
  await client.query(`SET LOCAL lock_timeout = '30s'`);
  try {
    await client.query('SELECT fp_lock_revocations_for_insert()');
  } catch (err) {
    if ((err as { code?: string }).code === '55P03') throw new FleetError('REVOCATIONS_BUSY', 'revocations are held by a CRL publication that has not finished within 30 s; nothing was revoked, try again', { httpStatus: 503, cause: err, details: { retryAfterSeconds: 5 } });
    throw err;
  }
  const param = target.kind === 'serials' ? target.serials : target.kind === 'devices' ? target.eui64s : target.batchId;
  const scoped = request.manufacturerId === null ? 'SELECT * FROM t' : 'SELECT t.* FROM t JOIN devices d ON d.eui64 = t.eui64 AND d.manufacturer_id = $2';
  const scopeParams = request.manufacturerId === null ? [] : [request.manufacturerId];
  if (checkThreshold && request.threshold && request.personId) {
    // For a batch, the whole batch counts (the first slice checks it).
    const counted = batch ? `(SELECT count(*) FROM certificates c WHERE c.batch_id = $${scopeParams.length + 4}::uuid AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial))` : '(SELECT count(*) FROM s WHERE NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = s.serial))';
    const { rows: c } = await client.query<{ fresh: number; recent: number }>(
      `WITH t AS (${TARGET_SQL[target.kind]}), s AS (${scoped})
       SELECT ${counted}::int AS fresh,
              (SELECT count(*) FROM revocations WHERE requested_by_person = $${scopeParams.length + 2} AND approval_id IS NULL
                 AND created_at > clock_timestamp() - make_interval(mins => $${scopeParams.length + 3}))::int AS recent`,
      [param, ...scopeParams, request.personId, request.threshold.windowMinutes, ...(batch ? [batch.batchId] : [])],
    );
    const { fresh, recent } = c[0]!;
    if (fresh > 0 && fresh + recent > request.threshold.certificates) {
      throw new FleetError('DUAL_CONTROL_THRESHOLD', `revoking ${fresh} certificate(s) after ${recent} in the last ${request.threshold.windowMinutes} min without approval is more than ${request.threshold.certificates}: a second officer must approve`, {
        httpStatus: 202,
        details: { wouldRevoke: fresh, recentWithoutApproval: recent, threshold: request.threshold.certificates, windowMinutes: request.threshold.windowMinutes },
      });
    }
  }
  const at = scopeParams.length + 2;
  const { rows } = await client.query<{ serial: Buffer; crl_shard: number; eui64: Buffer; inserted: boolean }>(
    `WITH t AS (${TARGET_SQL[target.kind]}),
          s AS (${scoped}),
          ins AS (
            INSERT INTO revocations (serial, ca_id, crl_shard, reason, revoked_at, requested_by, requested_by_person, approval_id)
            SELECT s.serial, s.ca_id, s.crl_shard, $${at}, $${at + 1}, $${at + 2}, $${at + 3}, $${at + 4} FROM s
            ON CONFLICT (serial) DO NOTHING
            RETURNING serial)
     SELECT s.serial, s.crl_shard, s.eui64, (ins.serial IS NOT NULL) AS inserted FROM s LEFT JOIN ins ON ins.serial = s.serial`,
    [param, ...scopeParams, request.reason, request.revokedAt, request.requestedBy, request.personId ?? null, request.approvalId ?? null],
  );
  const inserted = rows.filter((r) => r.inserted);
  const shards = [...new Set(inserted.map((r) => r.crl_shard))].sort((a, b) => a - b);
  if (inserted.length > 0) {
    const serials = inserted.map((r) => r.serial);
    await client.query(`INSERT INTO crl_dirty (ca_id, shard) SELECT DISTINCT r.ca_id, r.crl_shard FROM revocations r WHERE r.serial = ANY($1::bytea[]) ON CONFLICT DO NOTHING`, [serials]);
    // In this transaction: no stored "good" survives the revocation, and every responder sees a new
    // generation (the insert's trigger bumps it: migrations/0043).
    await client.query(`DELETE FROM ocsp_responses WHERE serial = ANY($1::bytea[]) AND status = 'good'`, [serials]);
  }
  let notFound: Buffer[] = [];
  if (target.kind !== 'batch' && !batch) {
    const found = new Set(rows.map((r) => (target.kind === 'serials' ? r.serial : r.eui64).toString('hex')));
    const named = target.kind === 'serials' ? target.serials : target.eui64s;
    notFound = named.filter((n) => !found.has(n.toString('hex')));
  }
  await appendAuditEvents(client, [
    {
      site: request.site,
      actor: request.requestedBy,
      action: 'revocation.request',
      subject: batch ? `batch:${batch.batchId}` : `${target.kind}:${param instanceof Array ? param.length : 1}`,
      details: { reason: request.reason, revoked: inserted.length, alreadyRevoked: rows.length - inserted.length, notFound: notFound.length, ...(part ? { slice: part.slice } : {}), serials: inserted.map((r) => r.serial.toString('hex')) },
    },
  ]);
  return { revoked: inserted.length, alreadyRevoked: rows.length - inserted.length, notFound, shards };
}

/** The revocation generation (one row, bumped by every revocation that revoked something). */
export async function revocationGeneration(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ g: number }>('SELECT generation AS g FROM revocation_generation');
  return Number(rows[0]!.g);
}

/** Does this batch exist and belong to the manufacturer (when scoped)? */
export async function batchOwner(db: Queryable, batchId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ manufacturer_id: string }>('SELECT manufacturer_id FROM batches WHERE id = $1::uuid', [batchId]);
  return rows[0]?.manufacturer_id;
}

// --- CRLs -------------------------------------------------------------------------------------------

export interface CrlRecord {
  readonly caId: string;
  readonly shard: number;
  readonly kind: 'full' | 'delta';
  readonly crlNumber: bigint;
  readonly baseNumber: bigint | null;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly coversUntil: Date;
  readonly entries: number;
  readonly der: Buffer;
}

function toCrl(r: Record<string, unknown>): CrlRecord {
  return {
    caId: r.ca_id as string,
    shard: r.shard as number,
    kind: r.kind as 'full' | 'delta',
    crlNumber: BigInt(r.crl_number as number),
    baseNumber: r.base_number === null ? null : BigInt(r.base_number as number),
    thisUpdate: r.this_update as Date,
    nextUpdate: r.next_update as Date,
    coversUntil: r.covers_until as Date,
    entries: r.entries as number,
    der: r.der as Buffer,
  };
}

export async function getCrl(db: Queryable, caId: string, shard: number, kind: 'full' | 'delta'): Promise<CrlRecord | undefined> {
  const { rows } = await db.query('SELECT * FROM crls WHERE ca_id = $1 AND shard = $2 AND kind = $3', [caId, shard, kind]);
  return rows[0] ? toCrl(rows[0]) : undefined;
}

/** Full CRLs (without their DER), for the publisher's schedule. */
export async function listFullCrls(db: Queryable, caId: string): Promise<Omit<CrlRecord, 'der'>[]> {
  const { rows } = await db.query("SELECT ca_id, shard, kind, crl_number, base_number, this_update, next_update, covers_until, entries, ''::bytea AS der FROM crls WHERE ca_id = $1 AND kind = 'full'", [caId]);
  return rows.map(toCrl);
}

/** Shards with revocations not yet in a published CRL, and since when each has been waiting. */
export async function listDirtyShards(db: Queryable, caId: string): Promise<{ shard: number; since: Date }[]> {
  const { rows } = await db.query<{ shard: number; since: Date }>('SELECT shard, since FROM crl_dirty WHERE ca_id = $1 ORDER BY shard', [caId]);
  return rows.map((r) => ({ shard: r.shard, since: r.since }));
}

/**
 * Is the status responder still re-signing recent revocations of the CA? True while a certificate
 * revoked in the last ten minutes has no stored SHA-1 "revoked" response yet (the revocation deleted
 * its "good" one; the responder's re-signer stores the new one). Asked by the CRL publisher only while
 * shards are dirty; EXISTS stops at the first.
 */
export async function revocationsAwaitingOcsp(db: Queryable, caId: string): Promise<boolean> {
  const { rows } = await db.query<{ waiting: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM revocations r
       WHERE r.ca_id = $1 AND r.created_at > now() - interval '10 minutes'
         AND NOT EXISTS (SELECT 1 FROM ocsp_responses o WHERE o.serial = r.serial AND o.hash_alg = 'sha1' AND o.status = 'revoked')) AS waiting`,
    [caId],
  );
  return rows[0]!.waiting;
}

/**
 * A consistent view for publishing: revocations are locked against new rows while the shards are read
 * (SHARE lock: concurrent revocations wait a moment), so covers_until is exact and a delta CRL misses
 * nothing its base does not have. Runs `fn` with helpers bound to that snapshot and commits what it writes.
 */
export async function withCrlSnapshot<T>(pool: Pool, fn: (snapshot: CrlSnapshot) => Promise<T>): Promise<T> {
  return withTransaction(pool, async (client) => {
    // READ COMMITTED on purpose. The lock is what keeps the view still: every revocation writer takes
    // the conflicting lock, so while it is held each statement sees the same revocations, all of them
    // committed before the lock was granted. REPEATABLE READ would fix its snapshot when the locking
    // SELECT starts, before the lock is granted, and miss a revocation committed during the wait (a CRL
    // claiming to cover its time without it); a second publication would fail on the CRL number row
    // instead of waiting for the first (test/revocation.test.ts reproduces both).
    await client.query('SELECT fp_lock_revocations()');
    const { rows } = await client.query<{ at: Date }>('SELECT clock_timestamp() AS at');
    return fn(new CrlSnapshot(client, rows[0]!.at));
  });
}

/** The next CRL number of a CA: greatest(last + 1, unix seconds), never backwards (RFC 5280 5.2.3). */
export async function nextCrlNumber(db: Queryable, caId: string): Promise<bigint> {
  const { rows } = await db.query<{ n: string }>(
    `INSERT INTO crl_numbers (ca_id, last_number) VALUES ($1, extract(epoch FROM clock_timestamp())::bigint)
     ON CONFLICT (ca_id) DO UPDATE SET last_number = greatest(crl_numbers.last_number + 1, extract(epoch FROM clock_timestamp())::bigint)
     RETURNING last_number::text AS n`,
    [caId],
  );
  return BigInt(rows[0]!.n);
}

/** Stores a CA's current CRL of its kind and shard, replacing the previous one. */
export async function saveCrl(db: Queryable, crl: CrlRecord): Promise<void> {
  await db.query(
    `INSERT INTO crls (ca_id, shard, kind, crl_number, base_number, this_update, next_update, covers_until, entries, der)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (ca_id, shard, kind) DO UPDATE SET crl_number = EXCLUDED.crl_number, base_number = EXCLUDED.base_number, this_update = EXCLUDED.this_update,
       next_update = EXCLUDED.next_update, covers_until = EXCLUDED.covers_until, entries = EXCLUDED.entries, der = EXCLUDED.der, published_at = now()`,
    [crl.caId, crl.shard, crl.kind, crl.crlNumber.toString(), crl.baseNumber?.toString() ?? null, crl.thisUpdate, crl.nextUpdate, crl.coversUntil, crl.entries, crl.der],
  );
}

export class CrlSnapshot {
  constructor(
    private readonly client: PoolClient,
    /** Every revocation created up to this instant is visible here, and no later one. */
    readonly coversUntil: Date,
  ) {}

  async revokedInShard(caId: string, shard: number, after?: Date): Promise<{ serial: Buffer; revokedAt: Date; reason: number }[]> {
    const { rows } = await this.client.query<{ serial: Buffer; revoked_at: Date; reason: number }>(
      `SELECT serial, revoked_at, reason FROM revocations WHERE ca_id = $1 AND crl_shard = $2 ${after ? 'AND created_at > $3' : ''} ORDER BY serial`,
      after ? [caId, shard, after] : [caId, shard],
    );
    return rows.map((r) => ({ serial: r.serial, revokedAt: r.revoked_at, reason: r.reason }));
  }

  async previousFull(caId: string, shard: number): Promise<CrlRecord | undefined> {
    return getCrl(this.client, caId, shard, 'full');
  }

  /** The next CRL number: greatest(last + 1, unix seconds), never backwards (RFC 5280 5.2.3). */
  async nextCrlNumber(caId: string): Promise<bigint> {
    return nextCrlNumber(this.client, caId);
  }

  async saveCrl(crl: CrlRecord): Promise<void> {
    await saveCrl(this.client, crl);
  }

  async clearDirty(caId: string, shards: readonly number[]): Promise<void> {
    await this.client.query('DELETE FROM crl_dirty WHERE ca_id = $1 AND shard = ANY($2::int[])', [caId, shards]);
  }
}

// --- OCSP -------------------------------------------------------------------------------------------

export interface CertificateStatusRow {
  readonly serial: Buffer;
  readonly caId: string;
  readonly revokedAt: Date | null;
  readonly reason: number | null;
}

export async function getCertificateStatus(db: Queryable, serial: Buffer): Promise<CertificateStatusRow | undefined> {
  const { rows } = await db.query<{ serial: Buffer; ca_id: string; revoked_at: Date | null; reason: number | null }>(
    'SELECT c.serial, c.ca_id, r.revoked_at, r.reason FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial WHERE c.serial = $1',
    [serial],
  );
  const r = rows[0];
  return r ? { serial: r.serial, caId: r.ca_id, revokedAt: r.revoked_at, reason: r.reason } : undefined;
}

export interface StoredOcspResponse {
  readonly serial: Buffer;
  readonly hashAlg: 'sha1' | 'sha256';
  readonly status: 'good' | 'revoked';
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly der: Buffer;
}

/** What an OCSP answer for one serial needs, read in one statement (one snapshot, one round trip). */
export interface OcspLookup {
  /** The revocation generation of the same snapshot as the status. */
  readonly generation: number;
  readonly certificate: CertificateStatusRow | undefined;
  /** The stored response for this hash algorithm, if any (only for a known serial). */
  readonly stored: StoredOcspResponse | undefined;
}

export async function lookupOcsp(db: Queryable, serial: Buffer, hashAlg: 'sha1' | 'sha256'): Promise<OcspLookup> {
  const { rows } = await db.query<{ g: string; ca_id: string | null; revoked_at: Date | null; reason: number | null; status: 'good' | 'revoked' | null; this_update: Date | null; next_update: Date | null; der: Buffer | null }>(
    `SELECT g.generation::text AS g, c.ca_id, r.revoked_at, r.reason, o.status, o.this_update, o.next_update, o.der
       FROM revocation_generation g
       LEFT JOIN certificates c ON c.serial = $1
       LEFT JOIN revocations r ON r.serial = c.serial
       LEFT JOIN ocsp_responses o ON o.serial = c.serial AND o.hash_alg = $2`,
    [serial, hashAlg],
  );
  const r = rows[0]!;
  return {
    generation: Number(r.g),
    certificate: r.ca_id === null ? undefined : { serial, caId: r.ca_id, revokedAt: r.revoked_at, reason: r.reason },
    stored: r.status === null ? undefined : { serial, hashAlg, status: r.status, thisUpdate: r.this_update!, nextUpdate: r.next_update!, der: r.der! },
  };
}

export async function getOcspResponse(db: Queryable, serial: Buffer, hashAlg: 'sha1' | 'sha256'): Promise<StoredOcspResponse | undefined> {
  const { rows } = await db.query<{ status: 'good' | 'revoked'; this_update: Date; next_update: Date; der: Buffer }>(
    'SELECT status, this_update, next_update, der FROM ocsp_responses WHERE serial = $1 AND hash_alg = $2',
    [serial, hashAlg],
  );
  const r = rows[0];
  return r ? { serial, hashAlg, status: r.status, thisUpdate: r.this_update, nextUpdate: r.next_update, der: r.der } : undefined;
}

export async function saveOcspResponses(db: Queryable, given: readonly StoredOcspResponse[]): Promise<void> {
  // One row per (serial, hash) in a statement: ON CONFLICT cannot touch a row twice. The newest wins.
  const newest = new Map<string, StoredOcspResponse>();
  for (const r of given) {
    const key = `${r.hashAlg}:${r.serial.toString('hex')}`;
    const seen = newest.get(key);
    if (!seen || seen.thisUpdate <= r.thisUpdate) newest.set(key, r);
  }
  const responses = [...newest.values()];
  if (responses.length === 0) return;
  // Never a "good" for a revoked certificate, and never "good" over "revoked", whatever arrives late.
  // A row written or rewritten takes the next position in the responders' feed (0042: stored_seq; a
  // trigger assigns it, 0043).
  // A stored row dated more than five minutes ahead of the database's clock was not signed by a
  // responder of this CA (its thisUpdate is its signing time): it is replaced, else a writer of the
  // table could pin rows the refresher then re-signs in vain on every pass (an outside review, issue 37).
  await db.query(
    `INSERT INTO ocsp_responses (serial, hash_alg, status, this_update, next_update, der)
     SELECT t.* FROM unnest($1::bytea[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bytea[]) AS t(serial, hash_alg, status, this_update, next_update, der)
      WHERE t.status = 'revoked' OR NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = t.serial)
     ON CONFLICT (serial, hash_alg) DO UPDATE SET status = EXCLUDED.status, this_update = EXCLUDED.this_update, next_update = EXCLUDED.next_update, der = EXCLUDED.der
       WHERE (ocsp_responses.this_update <= EXCLUDED.this_update OR ocsp_responses.this_update > clock_timestamp() + interval '5 minutes') AND NOT (ocsp_responses.status = 'revoked' AND EXCLUDED.status = 'good')`,
    [responses.map((r) => r.serial), responses.map((r) => r.hashAlg), responses.map((r) => r.status), responses.map((r) => r.thisUpdate), responses.map((r) => r.nextUpdate), responses.map((r) => r.der)],
  );
}

export interface RevocationCursor {
  /** PostgreSQL's text of created_at (microseconds). */
  readonly createdAt: string;
  readonly serial: Buffer;
}

/** Revocations after `cursor` in (created_at, serial) order: the responder's feed of new revocations. */
export async function revocationsSince(db: Queryable, cursor: RevocationCursor, limit: number): Promise<{ serial: Buffer; caId: string; revokedAt: Date; reason: number; createdAt: string }[]> {
  const { rows } = await db.query<{ serial: Buffer; ca_id: string; revoked_at: Date; reason: number; created_at: string }>(
    'SELECT serial, ca_id, revoked_at, reason, created_at::text AS created_at FROM revocations WHERE (created_at, serial) > ($1::timestamptz, $2::bytea) ORDER BY created_at, serial LIMIT $3',
    [cursor.createdAt, cursor.serial, limit],
  );
  return rows.map((r) => ({ serial: r.serial, caId: r.ca_id, revokedAt: r.revoked_at, reason: r.reason, createdAt: r.created_at }));
}

/**
 * Pre-produced responses of CA `caId`'s certificates whose nextUpdate is near, for the refresher. Rows of
 * another CA's certificates are not this refresher's to sign: returned, they would be skipped and come
 * back first on every pass (an outside review, issue 37).
 */
export async function ocspResponsesExpiringBefore(db: Queryable, caId: string, before: Date, limit: number): Promise<{ serial: Buffer; hashAlg: 'sha1' | 'sha256' }[]> {
  const { rows } = await db.query<{ serial: Buffer; hash_alg: 'sha1' | 'sha256' }>(
    'SELECT o.serial, o.hash_alg FROM ocsp_responses o JOIN certificates c ON c.serial = o.serial AND c.ca_id = $1 WHERE o.next_update < $2 ORDER BY o.next_update LIMIT $3',
    [caId, before, limit],
  );
  return rows.map((r) => ({ serial: r.serial, hashAlg: r.hash_alg }));
}

/** Timestamps in cursors are PostgreSQL's own text (microseconds): a JS Date would cut them to ms. */
export interface IssueCursor {
  readonly issuedAt: string;
  readonly serial: Buffer;
}

export interface IssuedCertificateStatus {
  readonly serial: Buffer;
  readonly issuedAt: string;
  readonly revokedAt: Date | null;
  readonly reason: number | null;
  /** A SHA-1 CertID response is already stored. */
  readonly hasResponse: boolean;
}

/**
 * Certificates of a CA in issue order after `cursor` and issued before `until`, with their revocation
 * and whether a pre-produced response exists: the OCSP pre-producer's work list.
 */
export async function certificatesIssuedAfter(db: Queryable, caId: string, cursor: IssueCursor, until: Date, limit: number): Promise<IssuedCertificateStatus[]> {
  const { rows } = await db.query<{ serial: Buffer; issued_at: string; revoked_at: Date | null; reason: number | null; has_response: boolean }>(
    `SELECT c.serial, c.issued_at::text AS issued_at, r.revoked_at, r.reason,
            EXISTS (SELECT 1 FROM ocsp_responses o WHERE o.serial = c.serial AND o.hash_alg = 'sha1') AS has_response
       FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
      WHERE c.ca_id = $1 AND (c.issued_at, c.serial) > ($2::timestamptz, $3::bytea) AND c.issued_at < $4
      ORDER BY c.issued_at, c.serial LIMIT $5`,
    [caId, cursor.issuedAt, cursor.serial, until, limit],
  );
  return rows.map((r) => ({ serial: r.serial, issuedAt: r.issued_at, revokedAt: r.revoked_at, reason: r.reason, hasResponse: r.has_response }));
}
