import { X509Certificate, createHash, verify, type KeyObject } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteId } from '@fleetpki/core';
import type { KeyStore } from '@fleetpki/hsm';
import type { AuditRow, CaRecord, Pool } from '@fleetpki/store';
import { OID, subjectKeyIdMethod2 } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { issueOrganisationCertificate } from '../access/organisation-issuer.js';
import { auditStoreOf } from './postgres-store.js';
import type { AuditKeyRecord, AuditKeyStore, AuditSealStore, AuditVerifyStore } from './store.js';

const GENESIS = Buffer.alloc(32);

/**
 * Where seals are checkpointed outside the database by default (production: append-only storage
 * elsewhere): in the deployment's folder, since the checkpoints belong to its database.
 */
export function auditCheckpointFile(deploymentDir: string): string {
  return join(deploymentDir, 'audit-checkpoints.ndjson');
}

/** The bytes a chain hash covers: every column, in PostgreSQL's exact text forms. */
function canonical(row: AuditRow): string {
  return JSON.stringify([row.seq, row.at, row.site, row.actor, row.action, row.subject, row.details]);
}

export function chainHash(previous: Buffer, row: AuditRow): Buffer {
  return createHash('sha256').update(previous).update(canonical(row)).digest();
}

/** Signs seals: a site's audit key in its HSM, certified by the organisation CA. */
export interface AuditSigner {
  readonly keyId: Buffer;
  /** DER ECDSA-Sig-Value over SHA-256 of the statement. */
  sign(statement: Buffer): Promise<Buffer>;
}

/** What a seal's signature covers: the seq it ends at, the chain hash there, and how many rows it seals. */
export function sealStatement(seq: string, chainHash: Buffer, rows: number): Buffer {
  return Buffer.from(`fleetpki-audit-seal-v1\n${seq}\n${chainHash.toString('hex')}\n${rows}\n`, 'utf8');
}

/**
 * The site's audit key: generated in its HSM on first use (non-extractable: each site has its own) and
 * certified once by the organisation CA, so a verifier who trusts only the root can check every seal.
 */
export async function ensureAuditKey(db: AuditKeyStore | Pool, keyStore: KeyStore, site: SiteId, actor: string): Promise<AuditSigner> {
  const store: AuditKeyStore = auditStoreOf(db);
  const label = `audit-${site}`;
  if (!(await keyStore.hasKey(label))) await keyStore.generateSigningKey(label);
  const signer = await keyStore.getSigner(label);
  const keyId = subjectKeyIdMethod2(signer.publicKeySpki.subarray(signer.publicKeySpki.length - 65));
  if (!(await store.listAuditKeys()).some((k) => k.keyId.equals(keyId))) {
    const issued = await issueOrganisationCertificate(store, keyStore, site, { purpose: 'audit', subject: { organization: 'fleetpki', organizationalUnit: 'audit', commonName: `fleetpki audit key site ${site}` }, publicKeySpki: signer.publicKeySpki, days: 3650, actor });
    await store.insertAuditKey({ keyId, site, keyLabel: label, certificate: issued.der });
  }
  return { keyId, sign: (statement) => signer.sign(statement) };
}

export interface SealResult {
  readonly sealed: number;
  readonly lastSeq: string | null;
  /**
   * Holes in the seq numbers sealed over (each "from-to"): a rolled-back insert leaves one, and nothing
   * else should, since only the database assigns seq (fp_audit_append). The sealer reports them so a
   * hole is seen, not silently skipped; `fleetpki audit verify` tells a removed row apart.
   */
  readonly gaps: readonly string[];
}

/**
 * Links the committed, settled audit rows after the last seal into the hash chain and records a seal,
 * in the database and as a line in `checkpointFile` (outside the database: a deleted tail cannot take
 * its own evidence with it). One sealer at a time (advisory lock).
 */
export async function sealAuditLog(db: AuditSealStore | Pool, checkpointFile: string, options: { settleMs?: number; gapSettleMs?: number; limit?: number; signer?: AuditSigner } = {}): Promise<SealResult> {
  const store: AuditSealStore = auditStoreOf(db);
  const result = await store.sealTransaction(async (tx) => {
    const last = await tx.lastAuditSeal();
    const settleMs = options.settleMs ?? 5_000;
    const gapSettleMs = options.gapSettleMs ?? 120_000;
    // Seal a prefix only: stop at the first row still settling, and at a hole in the seq numbers while
    // it is young (a transaction still open holds that seq and would commit below the seal). Holes
    // older than gapSettleMs are rolled-back inserts.
    const rows: AuditRow[] = [];
    const gaps: string[] = [];
    let expected = BigInt(last?.seq ?? '0') + 1n;
    for (const row of await tx.unsealedAuditRows(last?.seq ?? '0', options.limit ?? 50_000)) {
      if (row.ageMs < settleMs) break;
      if (BigInt(row.seq) !== expected) {
        if (row.ageMs < gapSettleMs) break;
        gaps.push(`${expected}-${BigInt(row.seq) - 1n}`);
      }
      rows.push(row);
      expected = BigInt(row.seq) + 1n;
    }
    let previous: Buffer = last?.chainHash ?? GENESIS;
    const sealed = rows.map((row) => ({ seq: row.seq, chainHash: (previous = chainHash(previous, row)) }));
    const end = sealed[sealed.length - 1];
    const signature = end && options.signer ? { keyId: options.signer.keyId, signature: await options.signer.sign(sealStatement(end.seq, end.chainHash, sealed.length)) } : undefined;
    await tx.saveAuditSeal(sealed, signature);
    return { sealed, signature, gaps };
  });
  const last = result.sealed[result.sealed.length - 1];
  if (last) {
    const signed = result.signature ? { rows: result.sealed.length, keyId: result.signature.keyId.toString('hex'), signature: result.signature.signature.toString('base64') } : {};
    appendFileSync(checkpointFile, JSON.stringify({ seq: last.seq, chainHash: last.chainHash.toString('hex'), at: new Date().toISOString(), ...signed }) + '\n');
  }
  return { sealed: result.sealed.length, lastSeq: last?.seq ?? null, gaps: result.gaps };
}

export interface AuditProblem {
  readonly kind: 'modified' | 'deleted' | 'truncated' | 'unsealed-inside' | 'signature' | 'unsigned' | 'key-untrusted';
  readonly seq: string;
  readonly detail: string;
}

export interface AuditVerification {
  readonly rows: number;
  readonly sealedUpTo: string | null;
  /** Seals whose HSM signature verified with a key certified up to the trusted root. */
  readonly signedSeals: number;
  /** Seals from before signing began (none after the first signed one is acceptable). */
  readonly unsignedEarlySeals: number;
  readonly problems: AuditProblem[];
}

/**
 * The audit keys whose certificates chain to the trusted root through the organisation CA and carry
 * the audit EKU. `trustedRoot` (DER) is the operator's own copy; without it the root in the database is
 * used, which a database attacker could have replaced too.
 */
function trustedAuditKeys(keys: readonly AuditKeyRecord[], cas: readonly CaRecord[], trustedRoot: Buffer | undefined, problems: AuditProblem[]): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  const orgCa = cas.find((c) => c.id === CA_IDS.organisation);
  const orgDer = orgCa?.certificate;
  // The root the organisation CA's certificate is under now (after a root rollover, the one it was moved to).
  const rootDer = trustedRoot ?? cas.find((c) => c.id === (orgCa?.parentId ?? CA_IDS.root))?.certificate;
  if (!rootDer || !orgDer) return out;
  const root = new X509Certificate(rootDer);
  const org = new X509Certificate(orgDer);
  const orgTrusted = org.verify(root.publicKey) && org.checkIssued(root);
  for (const key of keys) {
    const cert = new X509Certificate(key.certificate);
    if (orgTrusted && cert.verify(org.publicKey) && cert.checkIssued(org) && (cert.keyUsage ?? []).includes(OID.auditSigning)) out.set(key.keyId.toString('hex'), cert.publicKey);
    else problems.push({ kind: 'key-untrusted', seq: '-', detail: `audit key ${key.keyId.toString('hex')} (site ${key.site}) is not certified by the organisation CA under the trusted root` });
  }
  return out;
}

/**
 * Recomputes the chain over every row and checks it against the seals in the database and in the
 * checkpoint file. Reports each problem with the seq where it shows: a row whose content changed
 * (modified, also what a reordering looks like), rows missing inside a sealed range (deleted, counted
 * per seal), rows missing after the last seal the checkpoint file knows (truncated), and unsealed rows
 * below a seal.
 */
export async function verifyAuditLog(db: AuditVerifyStore | Pool, checkpointFile: string, options: { trustedRoot?: Buffer } = {}): Promise<AuditVerification> {
  const store: AuditVerifyStore = auditStoreOf(db);
  const problems: AuditProblem[] = [];
  const seals = await store.listAuditSeals();
  const keys = trustedAuditKeys(await store.listAuditKeys(), await store.listCas(), options.trustedRoot, problems);
  let signedSeals = 0;
  let unsignedEarlySeals = 0;
  for (const seal of seals) {
    if (!seal.signature || !seal.keyId) {
      if (signedSeals === 0) unsignedEarlySeals++;
      else problems.push({ kind: 'unsigned', seq: seal.seq, detail: 'a seal without an HSM signature after signed seals began (written by someone without the audit key)' });
      continue;
    }
    const key = keys.get(seal.keyId.toString('hex'));
    if (key && verify('sha256', sealStatement(seal.seq, seal.chainHash, seal.rows), key, seal.signature)) signedSeals++;
    else problems.push({ kind: 'signature', seq: seal.seq, detail: key ? 'the seal signature does not verify (seal altered or forged)' : `signed with audit key ${seal.keyId.toString('hex')}, which is unknown or untrusted` });
  }
  const sealAt = new Map(seals.map((s) => [s.seq, s]));
  let previousStored: Buffer = GENESIS;
  let previousSeal = '0';
  let rowsSinceSeal = 0;
  let rows = 0;
  let lastSeq = '0';
  const lastSealSeq = seals.length ? seals[seals.length - 1]!.seq : null;
  const sealRows = new Map(seals.map((s) => [s.seq, s.rows]));
  for (let page = await store.auditRowsAfter('0', 10_000); page.length > 0; page = await store.auditRowsAfter(lastSeq, 10_000)) {
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
    const lastCheckpoint = lines.length ? (JSON.parse(lines[lines.length - 1]!) as { seq: string; chainHash: string; rows?: number; keyId?: string; signature?: string }) : undefined;
    if (lastCheckpoint?.signature && lastCheckpoint.keyId && lastCheckpoint.rows !== undefined) {
      const key = keys.get(lastCheckpoint.keyId);
      if (!key || !verify('sha256', sealStatement(lastCheckpoint.seq, Buffer.from(lastCheckpoint.chainHash, 'hex'), lastCheckpoint.rows), key, Buffer.from(lastCheckpoint.signature, 'base64'))) {
        problems.push({ kind: 'signature', seq: lastCheckpoint.seq, detail: 'the last checkpoint in the file does not carry a valid audit-key signature (the file was edited)' });
      }
    }
    if (lastCheckpoint && (lastSealSeq === null || BigInt(lastSealSeq) < BigInt(lastCheckpoint.seq) || BigInt(lastSeq) < BigInt(lastCheckpoint.seq))) {
      problems.push({ kind: 'truncated', seq: lastCheckpoint.seq, detail: `the checkpoint file says the log was sealed up to seq ${lastCheckpoint.seq}; the database ends at ${lastSeq} (seals up to ${lastSealSeq ?? 'none'})` });
    }
  }
  return { rows, sealedUpTo: lastSealSeq, signedSeals, unsignedEarlySeals, problems };
}

/** What GET /v1/audit/verify answers: the verification, and the most recent seals (who sealed, when). */
export async function auditReport(store: AuditVerifyStore, checkpointFile: string, recentSeals = 20): Promise<AuditVerification & { recentSeals: { seq: string; rows: number; sealedAt: Date; keyId: Buffer | null }[] }> {
  const verification = await verifyAuditLog(store, checkpointFile);
  return { ...verification, recentSeals: await store.recentAuditSeals(recentSeals) };
}
