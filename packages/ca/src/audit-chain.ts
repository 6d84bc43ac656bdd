import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditRowsAfter, lastAuditSeal, listAuditSeals, saveAuditSeal, unsealedAuditRows, withTransaction, type AuditRow, type Pool } from '@fleetpki/store';

const GENESIS = Buffer.alloc(32);

/** Where seals are checkpointed outside the database by default (production: append-only storage elsewhere). */
export function auditCheckpointFile(stateDir: string): string {
  return join(stateDir, 'audit-checkpoints.ndjson');
}

/** The bytes a chain hash covers: every column, in PostgreSQL's exact text forms. */
function canonical(row: AuditRow): string {
  return JSON.stringify([row.seq, row.at, row.site, row.actor, row.action, row.subject, row.details]);
}

export function chainHash(previous: Buffer, row: AuditRow): Buffer {
  return createHash('sha256').update(previous).update(canonical(row)).digest();
}

export interface SealResult {
  readonly sealed: number;
  readonly lastSeq: string | null;
}

/**
 * Links the committed, settled audit rows after the last seal into the hash chain and records a seal,
 * in the database and as a line in `checkpointFile` (outside the database: a deleted tail cannot take
 * its own evidence with it). One sealer at a time (advisory lock).
 */
export async function sealAuditLog(pool: Pool, checkpointFile: string, options: { settleMs?: number; gapSettleMs?: number; limit?: number } = {}): Promise<SealResult> {
  const result = await withTransaction(pool, async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('fleetpki-audit-seal'))`);
    const last = await lastAuditSeal(client);
    const settleMs = options.settleMs ?? 5_000;
    const gapSettleMs = options.gapSettleMs ?? 120_000;
    // Seal a prefix only: stop at the first row still settling, and at a hole in the seq numbers while
    // it is young (a transaction still open holds that seq and would commit below the seal). Holes
    // older than gapSettleMs are rolled-back inserts.
    const rows: AuditRow[] = [];
    let expected = BigInt(last?.seq ?? '0') + 1n;
    for (const row of await unsealedAuditRows(client, last?.seq ?? '0', options.limit ?? 50_000)) {
      if (row.ageMs < settleMs) break;
      if (BigInt(row.seq) !== expected && row.ageMs < gapSettleMs) break;
      rows.push(row);
      expected = BigInt(row.seq) + 1n;
    }
    let previous: Buffer = last?.chainHash ?? GENESIS;
    const sealed = rows.map((row) => ({ seq: row.seq, chainHash: (previous = chainHash(previous, row)) }));
    await saveAuditSeal(client, sealed);
    return sealed;
  });
  const last = result[result.length - 1];
  if (last) appendFileSync(checkpointFile, JSON.stringify({ seq: last.seq, chainHash: last.chainHash.toString('hex'), at: new Date().toISOString() }) + '\n');
  return { sealed: result.length, lastSeq: last?.seq ?? null };
}

export interface AuditProblem {
  readonly kind: 'modified' | 'deleted' | 'truncated' | 'unsealed-inside';
  readonly seq: string;
  readonly detail: string;
}

export interface AuditVerification {
  readonly rows: number;
  readonly sealedUpTo: string | null;
  readonly problems: AuditProblem[];
}

/**
 * Recomputes the chain over every row and checks it against the seals in the database and in the
 * checkpoint file. Reports each problem with the seq where it shows: a row whose content changed
 * (modified, also what a reordering looks like), rows missing inside a sealed range (deleted, counted
 * per seal), rows missing after the last seal the checkpoint file knows (truncated), and unsealed rows
 * below a seal.
 */
export async function verifyAuditLog(pool: Pool, checkpointFile: string): Promise<AuditVerification> {
  const problems: AuditProblem[] = [];
  const seals = await listAuditSeals(pool);
  const sealAt = new Map(seals.map((s) => [s.seq, s]));
  let previousStored: Buffer = GENESIS;
  let previousSeal = '0';
  let rowsSinceSeal = 0;
  let rows = 0;
  let lastSeq = '0';
  const lastSealSeq = seals.length ? seals[seals.length - 1]!.seq : null;
  const sealRows = new Map(seals.map((s) => [s.seq, s.rows]));
  for (let page = await auditRowsAfter(pool, '0', 10_000); page.length > 0; page = await auditRowsAfter(pool, lastSeq, 10_000)) {
    for (const row of page) {
      rows++;
      lastSeq = row.seq;
      if (!row.chainHash) {
        if (lastSealSeq && BigInt(row.seq) < BigInt(lastSealSeq)) problems.push({ kind: 'unsealed-inside', seq: row.seq, detail: 'row without chain hash below the last seal (inserted afterwards)' });
        continue;
      }
      rowsSinceSeal++;
      if (!chainHash(previousStored, row).equals(row.chainHash)) {
        problems.push({ kind: 'modified', seq: row.seq, detail: 'content or position does not match its chain hash (or the row before it was removed)' });
      }
      previousStored = row.chainHash;
      const seal = sealAt.get(row.seq);
      if (seal) {
        if (!seal.chainHash.equals(row.chainHash)) problems.push({ kind: 'modified', seq: row.seq, detail: 'chain hash differs from the seal recorded for it' });
        const expected = sealRows.get(row.seq)!;
        if (rowsSinceSeal !== expected) problems.push({ kind: 'deleted', seq: row.seq, detail: `${expected - rowsSinceSeal} row(s) missing between seq ${previousSeal} and ${row.seq} (sealed ${expected}, found ${rowsSinceSeal})` });
        previousSeal = row.seq;
        rowsSinceSeal = 0;
        sealAt.delete(row.seq);
      }
    }
  }
  for (const seal of sealAt.values()) problems.push({ kind: 'deleted', seq: seal.seq, detail: `the row a seal ends at is missing` });
  if (existsSync(checkpointFile)) {
    const lines = readFileSync(checkpointFile, 'utf8').trim().split('\n').filter(Boolean);
    const lastCheckpoint = lines.length ? (JSON.parse(lines[lines.length - 1]!) as { seq: string; chainHash: string }) : undefined;
    if (lastCheckpoint && (lastSealSeq === null || BigInt(lastSealSeq) < BigInt(lastCheckpoint.seq) || BigInt(lastSeq) < BigInt(lastCheckpoint.seq))) {
      problems.push({ kind: 'truncated', seq: lastCheckpoint.seq, detail: `the checkpoint file says the log was sealed up to seq ${lastCheckpoint.seq}; the database ends at ${lastSeq} (seals up to ${lastSealSeq ?? 'none'})` });
    }
  }
  return { rows, sealedUpTo: lastSealSeq, problems };
}
