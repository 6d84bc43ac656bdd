import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { AuditRow, CaRecord } from '@fleetpki/store';
import { auditReport, chainHash, sealAuditLog, verifyAuditLog, type AuditSigner } from './audit-chain.js';
import type { AuditKeyRecord, AuditSealStore, AuditSealTransaction, AuditVerifyStore, StoredAuditSeal } from './store.js';

/**
 * The audit chain over an in-memory log behind its narrow ports: what a seal covers (settled rows only,
 * holes while young), and what verification finds when rows are changed, removed or cut off after the
 * last checkpoint. The database's own rules (fp_audit_seal) are covered by the integration tests (test/).
 */
class MemoryAuditLog implements AuditSealStore, AuditVerifyStore {
  rows: (AuditRow & { ageMs: number })[] = [];
  seals: (StoredAuditSeal & { sealedAt: Date })[] = [];
  keys: AuditKeyRecord[] = [];
  cas: CaRecord[] = [];

  append(count: number, options: { ageMs?: number; skip?: number } = {}): void {
    for (let i = 0; i < count; i++) {
      const seq = String(this.rows.length ? Number(this.rows[this.rows.length - 1]!.seq) + 1 + (i === 0 ? (options.skip ?? 0) : 0) : 1 + (options.skip ?? 0));
      this.rows.push({ seq, at: `2026-12-06 09:00:${seq.padStart(2, '0')}.000001+00`, site: 'a', actor: 'test', action: 'test.event', subject: `s${seq}`, details: '{}', chainHash: null, ageMs: options.ageMs ?? 60_000 });
    }
  }

  async sealTransaction<T>(work: (tx: AuditSealTransaction) => Promise<T>): Promise<T> {
    return work({
      lastAuditSeal: async () => {
        const last = this.seals[this.seals.length - 1];
        return last && { seq: last.seq, chainHash: last.chainHash };
      },
      unsealedAuditRows: async (after, limit) => this.rows.filter((r) => !r.chainHash && BigInt(r.seq) > BigInt(after)).slice(0, limit),
      saveAuditSeal: async (sealed, signed) => {
        if (sealed.length === 0) return;
        for (const s of sealed) this.rows = this.rows.map((r) => (r.seq === s.seq ? { ...r, chainHash: s.chainHash } : r));
        const end = sealed[sealed.length - 1]!;
        this.seals.push({ seq: end.seq, chainHash: end.chainHash, rows: sealed.length, keyId: signed?.keyId ?? null, signature: signed?.signature ?? null, sealedAt: new Date() });
      },
    });
  }
  async listAuditSeals() {
    return this.seals;
  }
  async listAuditKeys() {
    return this.keys;
  }
  async listCas() {
    return this.cas;
  }
  async auditRowsAfter(after: string, limit: number) {
    return this.rows.filter((r) => BigInt(r.seq) > BigInt(after)).slice(0, limit);
  }
  async recentAuditSeals(limit: number) {
    return [...this.seals].reverse().slice(0, limit).map((s) => ({ seq: s.seq, rows: s.rows, sealedAt: s.sealedAt, keyId: s.keyId }));
  }
}

const checkpoints = () => join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-unit-')), 'checkpoints.ndjson');

describe('sealAuditLog', () => {
  it('chains the settled rows, stops at the first one still settling, and checkpoints the seal outside the store', async () => {
    const log = new MemoryAuditLog();
    log.append(3);
    log.append(2, { ageMs: 10 });
    const file = checkpoints();
    const sealed = await sealAuditLog(log, file, { settleMs: 5_000 });
    assert.deepEqual(sealed, { sealed: 3, lastSeq: '3', gaps: [] });
    let previous: Buffer = Buffer.alloc(32);
    for (const row of log.rows.slice(0, 3)) assert.ok(row.chainHash!.equals((previous = chainHash(previous, row))));
    assert.equal(log.rows[3]!.chainHash, null);
    const line = JSON.parse(readFileSync(file, 'utf8').trim()) as { seq: string; chainHash: string };
    assert.deepEqual([line.seq, line.chainHash], ['3', previous.toString('hex')]);
    assert.deepEqual(await sealAuditLog(log, file, { settleMs: 0 }), { sealed: 2, lastSeq: '5', gaps: [] });
    assert.deepEqual((await verifyAuditLog(log, file)).problems, []);
  });

  it('waits at a young hole in the seq numbers and seals over an old one, naming it', async () => {
    const log = new MemoryAuditLog();
    log.append(2);
    log.append(1, { skip: 1 });
    const file = checkpoints();
    assert.deepEqual(await sealAuditLog(log, file, { settleMs: 0 }), { sealed: 2, lastSeq: '2', gaps: [] });
    assert.deepEqual(await sealAuditLog(log, file, { settleMs: 0, gapSettleMs: 0 }), { sealed: 1, lastSeq: '4', gaps: ['3-3'] });
  });

  it('signs what it seals with the audit signer, and writes nothing when there is nothing to seal', async () => {
    const log = new MemoryAuditLog();
    const file = checkpoints();
    assert.deepEqual(await sealAuditLog(log, file, { settleMs: 0 }), { sealed: 0, lastSeq: null, gaps: [] });
    assert.equal(existsSync(file), false);
    log.append(2);
    const statements: string[] = [];
    const signer: AuditSigner = { keyId: Buffer.alloc(8, 1), sign: async (statement) => (statements.push(statement.toString()), Buffer.from('sig')) };
    await sealAuditLog(log, file, { settleMs: 0, signer });
    assert.deepEqual(statements, [`fleetpki-audit-seal-v1\n2\n${log.seals[0]!.chainHash.toString('hex')}\n2\n`]);
    assert.ok(log.seals[0]!.keyId!.equals(signer.keyId));
    // No key certified under a root here: verification says so rather than trusting the signature.
    assert.deepEqual([...new Set((await verifyAuditLog(log, file)).problems.map((p) => p.kind))], ['signature']);
  });
});

describe('verifyAuditLog', () => {
  async function sealedLog(rows: number): Promise<{ log: MemoryAuditLog; file: string }> {
    const log = new MemoryAuditLog();
    log.append(rows);
    const file = checkpoints();
    await sealAuditLog(log, file, { settleMs: 0 });
    return { log, file };
  }

  it('finds a row whose content changed after sealing', async () => {
    const { log, file } = await sealedLog(4);
    log.rows[1] = { ...log.rows[1]!, actor: 'someone else' };
    const r = await verifyAuditLog(log, file);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [['modified', '2']]);
  });

  it('finds rows removed inside a seal, and a tail cut off after the last checkpoint', async () => {
    const { log, file } = await sealedLog(4);
    log.rows.splice(1, 1);
    assert.ok((await verifyAuditLog(log, file)).problems.some((p) => p.kind === 'deleted' && p.seq === '4'));
    const cut = await sealedLog(4);
    cut.log.rows = cut.log.rows.slice(0, 2);
    cut.log.seals = [];
    assert.ok((await verifyAuditLog(cut.log, cut.file)).problems.some((p) => p.kind === 'truncated' && p.seq === '4'));
  });

  it('auditReport adds the most recent seals to the verification', async () => {
    const { log, file } = await sealedLog(2);
    log.append(1);
    await sealAuditLog(log, file, { settleMs: 0 });
    const report = await auditReport(log, file, 1);
    assert.deepEqual([report.rows, report.sealedUpTo, report.problems.length], [3, '3', 0]);
    assert.deepEqual(report.recentSeals.map((s) => [s.seq, s.rows]), [['3', 1]]);
  });
});
