import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { chainHash, ensureAuditKey, sealAuditLog, verifyAuditLog, type AuditSigner } from '@fleetpki/ca';
import { openSiteKeyStore, type KeyStore } from '@fleetpki/hsm';
import { assembleSignedCertificate, buildCaTbs, toPem } from '@fleetpki/x509';
import { ensureCa } from './support/ca.js';
import { appendAuditEvents, createPool, insertCa, lastAuditSeal, listAuditKeys, listCas, migrate, unsealedAuditRows, type Pool } from '@fleetpki/store';
import { createScratchDatabase, ensureSites } from './support/sites.js';

/**
 * The audit log against someone who can write its tables: append-only, a hash chain, seals signed in the
 * HSM and checkpoints outside the database, so a change, a deletion or a re-sealed stretch shows.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let pool: Pool;
let drop: () => Promise<void>;
let checkpoints: string;
let scratchUrl: string;
let round = 0;

/** A fresh log of 30 events in three sealed stretches, each test tampering with its own copy. */
async function sealedLog(): Promise<string[]> {
  // The tests play an attacker with the table owner's rights: the append-only triggers are off for them.
  await pool.query('ALTER TABLE audit_events DISABLE TRIGGER USER; ALTER TABLE audit_seals DISABLE TRIGGER USER');
  await pool.query('TRUNCATE audit_events, audit_seals RESTART IDENTITY');
  checkpoints = join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), `checkpoints-${round++}.ndjson`);
  for (let stretch = 0; stretch < 3; stretch++) {
    await appendAuditEvents(pool, Array.from({ length: 10 }, (_, i) => ({ site: 'a' as const, actor: 'test', action: 'test.event', subject: `s${stretch}-${i}`, details: { n: i, nested: { b: 2, a: 1 } } })));
    const sealed = await sealAuditLog(pool, checkpoints, { settleMs: 0, gapSettleMs: 0 });
    assert.equal(sealed.sealed, 10);
  }
  return (await pool.query<{ seq: string }>('SELECT seq::text FROM audit_events ORDER BY audit_events.seq')).rows.map((r) => r.seq);
}

before(async () => {
  const config = await ensureSites();
  const scratch = await createScratchDatabase(config);
  drop = scratch.drop;
  scratchUrl = scratch.urlA;
  pool = createPool(scratch.urlA, { max: 2 });
  await migrate(pool, join(config.repoRoot, 'migrations'));
});

after(async () => {
  await pool?.end();
  await drop?.();
});

describe('append-only audit tables', () => {
  it('refuse UPDATE, DELETE and TRUNCATE, but let the sealer set a chain hash once', async () => {
    await pool.query('ALTER TABLE audit_events ENABLE TRIGGER USER; ALTER TABLE audit_seals ENABLE TRIGGER USER');
    await appendAuditEvents(pool, [{ site: 'a', actor: 'test', action: 'test.append-only' }]);
    const { rows } = await pool.query<{ seq: string }>('SELECT max(seq)::text AS seq FROM audit_events');
    const seq = rows[0]!.seq;
    await assert.rejects(pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [seq]), /append-only: UPDATE refused/);
    await assert.rejects(pool.query('DELETE FROM audit_events WHERE seq = $1', [seq]), /append-only: DELETE refused/);
    await assert.rejects(pool.query('TRUNCATE audit_events'), /append-only: TRUNCATE refused/);
    await sealAuditLog(pool, join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), 'c.ndjson'), { settleMs: 0 });
    await assert.rejects(pool.query(`UPDATE audit_events SET chain_hash = '\\x00' WHERE seq = $1`, [seq]), /append-only: UPDATE refused/);
    await assert.rejects(pool.query('DELETE FROM audit_seals'), /audit_seals is append-only/);
  });
});

describe('tamper-evident audit log', () => {
  let seqs: string[];
  beforeEach(async () => {
    seqs = await sealedLog();
  });

  it('an untouched log verifies', async () => {
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual([r.rows, r.sealedUpTo, r.problems], [30, seqs[29], []]);
  });

  it('reports a modified record at its seq', async () => {
    await pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [seqs[12]]);
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [['modified', seqs[12]]]);
  });

  it('reports a deleted record inside a sealed stretch', async () => {
    await pool.query('DELETE FROM audit_events WHERE seq = $1', [seqs[15]]);
    const r = await verifyAuditLog(pool, checkpoints);
    assert.ok(r.problems.some((p) => p.kind === 'deleted' && p.seq === seqs[19] && /1 row\(s\) missing/.test(p.detail)), JSON.stringify(r.problems));
    assert.ok(r.problems.some((p) => p.kind === 'modified' && p.seq === seqs[16]), 'the next row no longer links');
  });

  it('reports two records that swapped places', async () => {
    // seq is an identity column; swapping everything else is the same reordering.
    await pool.query(
      `UPDATE audit_events e SET at = o.at, actor = o.actor, action = o.action, subject = o.subject, details = o.details
         FROM audit_events o WHERE (e.seq, o.seq) IN (($1::bigint, $2::bigint), ($2::bigint, $1::bigint))`,
      [seqs[3], seqs[4]],
    );
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual(r.problems.map((p) => p.kind), ['modified', 'modified']);
    assert.deepEqual(r.problems.map((p) => p.seq), [seqs[3], seqs[4]]);
  });

  it('reports a truncated tail, seals and all, from the checkpoint file', async () => {
    await pool.query('DELETE FROM audit_events WHERE seq > $1', [seqs[19]]);
    await pool.query('DELETE FROM audit_seals WHERE seq > $1', [seqs[19]]);
    const r = await verifyAuditLog(pool, checkpoints);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [['truncated', seqs[29]]]);
    assert.match(r.problems[0]!.detail, new RegExp(`sealed up to seq ${seqs[29]}; the database ends at ${seqs[19]}`));
  });

  it('leaves rows younger than the settle time for the next seal', async () => {
    await appendAuditEvents(pool, [{ site: 'a', actor: 'test', action: 'test.late' }]);
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 60_000 })).sealed, 0);
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 0 })).sealed, 1);
    assert.deepEqual((await verifyAuditLog(pool, checkpoints)).problems, []);
  });

  it('waits at a young hole in the seq numbers (a transaction may still commit there), then seals past it', async () => {
    // A rolled-back insert leaves a hole, as an open transaction would.
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await appendAuditEvents(client, [{ site: 'a', actor: 'test', action: 'test.rolled-back' }]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await appendAuditEvents(pool, [{ site: 'a', actor: 'test', action: 'test.after-hole' }]);
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 0 })).sealed, 0, 'stops at the hole while it is young');
    assert.equal((await sealAuditLog(pool, checkpoints, { settleMs: 0, gapSettleMs: 0 })).sealed, 1);
    assert.deepEqual((await verifyAuditLog(pool, checkpoints)).problems, []);
  });
});

describe('seals signed by the HSM audit key, certified by the organisation CA', () => {
  let signer: AuditSigner;
  let keyStore: KeyStore;
  let rootDer: Buffer;
  let orgDer: Buffer;
  let main: Pool;

  before(async () => {
    const config = await ensureSites();
    main = createPool(config.sites.a.databaseUrl, { max: 2 });
    await ensureCa(config, main);
    // The scratch database gets the real root and organisation CA (their keys are in the site's HSM).
    for (const ca of (await listCas(main)).filter((c) => c.id === 'root' || c.id === 'org1')) {
      await pool.query('DELETE FROM cas WHERE id = $1', [ca.id]);
      await insertCa(pool, ca);
      if (ca.id === 'root') rootDer = ca.certificate;
      else orgDer = ca.certificate;
    }
    keyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
    signer = await ensureAuditKey(pool, keyStore, 'a', 'test');
  });

  after(async () => {
    await keyStore?.close();
    await main?.end();
  });

  async function signedLog(): Promise<string[]> {
    await pool.query('ALTER TABLE audit_events DISABLE TRIGGER USER; ALTER TABLE audit_seals DISABLE TRIGGER USER');
    await pool.query('TRUNCATE audit_events, audit_seals RESTART IDENTITY');
    checkpoints = join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), `signed-${round++}.ndjson`);
    for (let stretch = 0; stretch < 3; stretch++) {
      await appendAuditEvents(pool, Array.from({ length: 5 }, (_, i) => ({ site: 'a' as const, actor: 'test', action: 'test.signed', subject: `s${stretch}-${i}` })));
      await sealAuditLog(pool, checkpoints, { settleMs: 0, gapSettleMs: 0, signer });
    }
    return (await pool.query<{ seq: string }>('SELECT seq::text FROM audit_seals ORDER BY audit_seals.seq')).rows.map((r) => r.seq);
  }

  it('every seal carries a signature that verifies with the certified key; OpenSSL accepts the key certificate', async () => {
    await signedLog();
    const r = await verifyAuditLog(pool, checkpoints, { trustedRoot: rootDer });
    assert.deepEqual([r.signedSeals, r.unsignedEarlySeals, r.problems], [3, 0, []]);
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-audit-key-'));
    const [key] = await listAuditKeys(pool);
    writeFileSync(join(dir, 'root.pem'), toPem(rootDer));
    writeFileSync(join(dir, 'org.pem'), toPem(orgDer));
    writeFileSync(join(dir, 'audit.pem'), toPem(key!.certificate));
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'org.pem'), join(dir, 'audit.pem')], { encoding: 'utf8' }), /: OK/);
  });

  it('a seal forged without the key, or one whose signature was altered, is reported at its seq', async () => {
    const seals = await signedLog();
    // Someone with database rights appends rows and seals them, but has no audit key: the sealing
    // function refuses an unsigned seal once seals are signed (migrations/0028)...
    await appendAuditEvents(pool, [{ site: 'a', actor: 'mallory', action: 'test.forged' }]);
    await assert.rejects(sealAuditLog(pool, checkpoints, { settleMs: 0, gapSettleMs: 0 }), { code: 'AUDIT_SEAL_UNSIGNED' });
    // ...so the owner, who can write the tables themselves, does it by hand: still reported.
    const last = (await lastAuditSeal(pool))!;
    const [row] = await unsealedAuditRows(pool, last.seq, 1);
    const forged = chainHash(last.chainHash, row!);
    await pool.query('UPDATE audit_events SET chain_hash = $2 WHERE seq = $1', [row!.seq, forged]);
    await pool.query('INSERT INTO audit_seals (seq, chain_hash, rows) VALUES ($1, $2, 1)', [row!.seq, forged]);
    await pool.query(`UPDATE audit_seals SET signature = set_byte(signature, 10, get_byte(signature, 10) # 1) WHERE seq = $1`, [seals[1]]);
    const r = await verifyAuditLog(pool, checkpoints, { trustedRoot: rootDer });
    const forgedSeq = (await pool.query<{ seq: string }>('SELECT max(seq)::text AS seq FROM audit_seals')).rows[0]!.seq;
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [['signature', seals[1]], ['unsigned', forgedSeq]]);
  });

  it('against another root the audit key is untrusted and no seal verifies', async () => {
    await signedLog();
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const tbs = buildCaTbs({ subject: { commonName: 'Not our root' }, serial: Buffer.from('01', 'hex'), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), publicKeySpki: other.publicKey.export({ format: 'der', type: 'spki' }) });
    const otherRoot = assembleSignedCertificate(tbs.der, sign('sha256', tbs.der, other.privateKey));
    const r = await verifyAuditLog(pool, checkpoints, { trustedRoot: otherRoot });
    assert.deepEqual([...new Set(r.problems.map((p) => p.kind))].sort(), ['key-untrusted', 'signature']);
    assert.equal(r.signedSeals, 0);
  });

  it('an edited checkpoint file is caught by its signature', async () => {
    await signedLog();
    const lines = readFileSync(checkpoints, 'utf8').trim().split('\n');
    const last = JSON.parse(lines[lines.length - 1]!) as { chainHash: string };
    last.chainHash = '00'.repeat(32);
    lines[lines.length - 1] = JSON.stringify(last);
    writeFileSync(checkpoints, lines.join('\n') + '\n');
    const r = await verifyAuditLog(pool, checkpoints, { trustedRoot: rootDer });
    assert.deepEqual(r.problems.map((p) => p.kind), ['signature']);
    assert.match(r.problems[0]!.detail, /checkpoint/);
  });
});

describe("the status responder's database role (the sealer)", () => {
  it('cannot UPDATE, DELETE or TRUNCATE audit rows or seals, nor switch the triggers off; it may append and seal', async () => {
    await pool.query('ALTER TABLE audit_events ENABLE TRIGGER USER; ALTER TABLE audit_seals ENABLE TRIGGER USER');
    const url = new URL(scratchUrl);
    url.username = 'fleetpki_status';
    const service = createPool(url.toString(), { max: 1 });
    try {
      await appendAuditEvents(service, [{ site: 'a', actor: 'service', action: 'test.service-role' }]);
      const seq = (await service.query<{ seq: string }>('SELECT max(seq)::text AS seq FROM audit_events')).rows[0]!.seq;
      await assert.rejects(service.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [seq]), /permission denied/);
      await assert.rejects(service.query('DELETE FROM audit_events WHERE seq = $1', [seq]), /permission denied/);
      await assert.rejects(service.query('TRUNCATE audit_events'), /permission denied/);
      await assert.rejects(service.query('DELETE FROM audit_seals'), /permission denied/);
      await assert.rejects(service.query('ALTER TABLE audit_events DISABLE TRIGGER USER'), /must be owner/);
      await assert.rejects(service.query('SET session_replication_role = replica'), /permission denied/);
      // Not even chain_hash by hand (issue 40 §3): the sealer's one path is fp_audit_seal, which chains
      // each row once, in order, after the last seal.
      await assert.rejects(service.query(`UPDATE audit_events SET chain_hash = '\\x${'00'.repeat(32)}' WHERE seq = $1 AND chain_hash IS NULL`, [seq]), /permission denied/);
      // Seals here are signed already (the describe above), so an unsigned one is refused; what this
      // checks is the role's path to sealing, so a stand-in signer will do (signatures are checked by
      // `audit verify`, against the certified key, not by the database).
      await assert.rejects(sealAuditLog(service, join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), 'checkpoints.ndjson'), { settleMs: 0, gapSettleMs: 0 }), { code: 'AUDIT_SEAL_UNSIGNED' });
      const standIn: AuditSigner = { keyId: Buffer.alloc(20), sign: async () => Buffer.from('stand-in') };
      const sealed = await sealAuditLog(service, join(mkdtempSync(join(tmpdir(), 'fleetpki-audit-')), 'checkpoints.ndjson'), { settleMs: 0, gapSettleMs: 0, signer: standIn });
      assert.equal(sealed.lastSeq, seq);
      await assert.rejects(service.query(`SELECT fp_audit_seal(ARRAY[$1]::bigint[], ARRAY['\\x${'11'.repeat(32)}'::bytea], '\\x01', 'stand-in')`, [seq]), /AUDIT_SEAL_INVALID/);
    } finally {
      await service.end();
    }
  });
});
