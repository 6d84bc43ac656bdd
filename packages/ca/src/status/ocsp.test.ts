import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Signer } from '@fleetpki/hsm';
import type { CertificateStatusRow, IssueCursor, RevocationCursor, StoredOcspResponse } from '@fleetpki/store';
import { buildCertId, buildOcspRequest, ocspIssuerHashes, ocspResponseEntries, type OcspHashAlgorithm } from '@fleetpki/x509';
import { OcspAnswerCache } from './ocsp-cache.js';
import { OcspCacheWarmer } from './ocsp-cache-warmer.js';
import { OcspPreProducer } from './ocsp-preproducer.js';
import { OcspRefresher } from './ocsp-refresher.js';
import { OcspResponder } from './ocsp-responder.js';
import { OcspRevocationResigner } from './ocsp-revocations.js';
import { OcspSigning } from './ocsp-signing.js';
import type { OcspAnswerStore, OcspProductionStore, OcspWarmStore, RevocationFeedStore } from './store.js';

// The split OCSP parts against an in-memory store: answering and its cache, revocation re-signing,
// pre-production and refresh, each through its narrow port.

const CA = 'fpd1';
const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
const issuer = ocspIssuerHashes(Buffer.from('3010310e300c06035504030c05746573742d', 'hex'), spki);

class CountingSigner implements Signer {
  readonly algorithm = 'ecdsa-p256-sha256' as const;
  readonly publicKeySpki = spki;
  signatures = 0;
  /** A slow HSM, to ask while a signature is under way. */
  delayMs = 0;
  async sign(data: Uint8Array): Promise<Buffer> {
    this.signatures++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    return sign('sha256', data, keys.privateKey);
  }
}

interface Cert {
  caId: string;
  issuedAt: string;
  revokedAt: Date | null;
  reason: number | null;
}

/** The rows the status capability reads, in memory. */
class MemoryStatusStore implements OcspAnswerStore, RevocationFeedStore, OcspProductionStore, OcspWarmStore {
  readonly certs = new Map<string, Cert>();
  readonly responses = new Map<string, StoredOcspResponse>();
  /** Each response's position in the feed (written order). */
  readonly seqs = new Map<string, number>();
  private seq = 0;
  readonly revocations: { serial: Buffer; caId: string; revokedAt: Date; reason: number; createdAt: string }[] = [];
  generation = 0;
  lookups = 0;
  private issued = 0;

  issue(caId = CA): Buffer {
    const serial = Buffer.from(`7f${(++this.issued).toString(16).padStart(14, '0')}`, 'hex');
    this.certs.set(serial.toString('hex'), { caId, issuedAt: `2026-01-01 00:00:${String(this.issued).padStart(6, '0')}`, revokedAt: null, reason: null });
    return serial;
  }

  revoke(serial: Buffer, reason = 1): void {
    const cert = this.certs.get(serial.toString('hex'))!;
    cert.revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    cert.reason = reason;
    this.generation++;
    this.revocations.push({ serial, caId: cert.caId, revokedAt: cert.revokedAt, reason, createdAt: new Date(Date.now() + this.revocations.length).toISOString() });
  }

  private row(serial: Buffer): CertificateStatusRow | undefined {
    const c = this.certs.get(serial.toString('hex'));
    return c && { serial, caId: c.caId, revokedAt: c.revokedAt, reason: c.reason };
  }

  async lookupOcsp(serial: Buffer, hashAlg: OcspHashAlgorithm) {
    this.lookups++;
    const certificate = this.row(serial);
    return { generation: this.generation, certificate, stored: certificate ? this.responses.get(`${hashAlg}:${serial.toString('hex')}`) : undefined };
  }
  async certificateStatus(serial: Buffer) {
    return this.row(serial);
  }
  async revocationGeneration() {
    return this.generation;
  }
  async saveOcspResponses(responses: readonly StoredOcspResponse[]) {
    for (const r of responses) {
      const key = `${r.hashAlg}:${r.serial.toString('hex')}`;
      this.responses.set(key, r);
      this.seqs.set(key, ++this.seq);
    }
  }
  private page(entries: [string, StoredOcspResponse][], limit: number) {
    const rows = entries.slice(0, limit).map(([key, stored]) => ({ stored, certificate: this.row(stored.serial)!, seq: String(this.seqs.get(key)) }));
    return { generation: this.generation, rows };
  }
  async storedOcspResponsesBySerial(after: { serial: Buffer; hashAlg: OcspHashAlgorithm } | undefined, validBeyond: Date, limit: number) {
    const from = after ? `${after.serial.toString('hex')}:${after.hashAlg}` : '';
    const entries = [...this.responses.entries()].filter(([, r]) => r.nextUpdate > validBeyond && `${r.serial.toString('hex')}:${r.hashAlg}` > from);
    return this.page(entries.sort(([, a], [, b]) => `${a.serial.toString('hex')}:${a.hashAlg}`.localeCompare(`${b.serial.toString('hex')}:${b.hashAlg}`)), limit);
  }
  async storedOcspResponsesSince(afterSeq: string, limit: number) {
    const entries = [...this.responses.entries()].filter(([key]) => this.seqs.get(key)! > Number(afterSeq));
    return this.page(entries.sort(([a], [b]) => this.seqs.get(a)! - this.seqs.get(b)!), limit);
  }
  async ocspResponseFeedPosition() {
    return String(this.seq);
  }
  async revocationsSince(cursor: RevocationCursor, limit: number) {
    return this.revocations.filter((r) => cursor.createdAt === '-infinity' || r.createdAt > cursor.createdAt).slice(0, limit);
  }
  async certificatesIssuedAfter(caId: string, cursor: IssueCursor, _until: Date, limit: number) {
    return [...this.certs.entries()]
      .filter(([, c]) => c.caId === caId && c.issuedAt > cursor.issuedAt)
      .sort(([, a], [, b]) => a.issuedAt.localeCompare(b.issuedAt))
      .slice(0, limit)
      .map(([hex, c]) => ({ serial: Buffer.from(hex, 'hex'), issuedAt: c.issuedAt, revokedAt: c.revokedAt, reason: c.reason, hasResponse: this.responses.has(`sha1:${hex}`) }));
  }
  async ocspResponsesExpiringBefore(caId: string, before: Date, limit: number) {
    return [...this.responses.values()].filter((r) => r.nextUpdate < before && this.certs.get(r.serial.toString('hex'))?.caId === caId).slice(0, limit).map((r) => ({ serial: r.serial, hashAlg: r.hashAlg }));
  }
}

function site(options: { validityMs?: number; canWrite?: boolean; cacheEntries?: number } = {}) {
  const store = new MemoryStatusStore();
  const signer = new CountingSigner();
  const signing = new OcspSigning(issuer, signer, options.validityMs);
  const canWrite = async () => options.canWrite ?? true;
  const cache = new OcspAnswerCache(undefined, options.cacheEntries);
  const revocations = new OcspRevocationResigner(store, CA, signing, cache, canWrite);
  const responder = new OcspResponder(store, CA, issuer, signing, canWrite, cache, { revocations });
  const preProducer = new OcspPreProducer(store, CA, signing, canWrite, () => revocations.busy);
  const refresher = new OcspRefresher(store, CA, signing, canWrite);
  const ask = async (serial: Buffer, alg: OcspHashAlgorithm = 'sha1') => {
    const answer = await responder.respond(buildOcspRequest(buildCertId(alg, issuer, serial)));
    return { kind: answer.kind, entries: answer.kind === 'good' || answer.kind === 'revoked' || answer.kind === 'unknown' ? ocspResponseEntries(answer.der) : [] };
  };
  const warmer = new OcspCacheWarmer(store, CA, issuer, cache);
  return { store, signer, cache, revocations, responder, preProducer, refresher, warmer, ask };
}

describe('OCSP answering with in-memory ports', () => {
  it('serves a pre-produced response from the store and then from its cache, without signing', async () => {
    const s = site();
    const serial = s.store.issue();
    assert.equal(await s.preProducer.preProduceNew({ settleMs: 0 }), 1);
    const signed = s.signer.signatures;
    assert.equal((await s.ask(serial)).kind, 'good');
    assert.equal((await s.ask(serial)).kind, 'good');
    assert.equal(s.signer.signatures, signed, 'answered from what was pre-produced');
    assert.equal(s.store.lookups, 1, 'the second answer came from the cache');
  });

  it('never serves a cached "good" once a revocation has committed, even before the watcher runs', async () => {
    const s = site();
    const serial = s.store.issue();
    assert.equal((await s.ask(serial)).kind, 'good');
    s.store.revoke(serial);
    const after = await s.ask(serial);
    assert.equal(after.kind, 'revoked');
    assert.equal(after.entries[0]!.status, 'revoked');
  });

  it('answers unknown for another CA\'s serial and unauthorized for another issuer', async () => {
    const s = site();
    assert.equal((await s.ask(s.store.issue('other'))).kind, 'unknown');
    const foreign = ocspIssuerHashes(Buffer.from('3000', 'hex'), spki);
    assert.equal((await s.responder.respond(buildOcspRequest(buildCertId('sha1', foreign, Buffer.from('01', 'hex'))))).kind, 'unauthorized');
    assert.equal((await s.responder.respond(Buffer.from('garbage'))).kind, 'malformedRequest');
  });

  it('without a signer serves what is stored and tryLater for the rest', async () => {
    const s = site();
    const stored = s.store.issue();
    await s.preProducer.preProduceNew({ settleMs: 0 });
    const fresh = s.store.issue();
    const unsigned = new OcspResponder(s.store, CA, issuer, undefined, async () => false);
    assert.equal((await unsigned.respond(buildOcspRequest(buildCertId('sha1', issuer, stored)))).kind, 'good');
    assert.equal((await unsigned.respond(buildOcspRequest(buildCertId('sha1', issuer, fresh)))).kind, 'tryLater');
  });
});

describe('revocation re-signing', () => {
  it('re-signs each new revocation once, stores it and caches it; SHA-256 answers are evicted', async () => {
    const s = site();
    const serials = Array.from({ length: 7 }, () => s.store.issue());
    for (const serial of serials) await s.ask(serial, 'sha256');
    for (const serial of serials) s.store.revoke(serial);
    let applied = 0;
    for (let pass = 0; pass < 4; pass++) applied += await s.revocations.applyNewRevocations(3);
    assert.equal(applied, 7, 'each revocation applied exactly once across passes of 3');
    for (const serial of serials) assert.equal(s.store.responses.get(`sha1:${serial.toString('hex')}`)?.status, 'revoked');
    assert.equal(s.revocations.busy, false);
    const lookups = s.store.lookups;
    assert.equal((await s.ask(serials[0]!)).kind, 'revoked');
    assert.equal(s.store.lookups, lookups, 'the SHA-1 answer came from the cache the re-signer filled');
    assert.equal((await s.ask(serials[0]!, 'sha256')).kind, 'revoked', 'the cached SHA-256 "good" was evicted');
  });

  it('where the site may not write, only evicts', async () => {
    const s = site({ canWrite: false });
    const serial = s.store.issue();
    s.store.revoke(serial);
    assert.equal(await s.revocations.applyAllNewRevocations(), 1);
    assert.equal(s.store.responses.size, 0);
  });

  it('a request for a revocation being re-signed gets that signature, not a second one', async () => {
    const s = site();
    const serial = s.store.issue();
    s.store.revoke(serial);
    s.signer.delayMs = 50;
    const applying = s.revocations.applyNewRevocations();
    while (!s.revocations.busy) await new Promise((r) => setImmediate(r));
    const answer = s.ask(serial);
    await applying;
    assert.equal((await answer).kind, 'revoked');
    assert.equal(s.signer.signatures, 1);
  });
});

describe('pre-production and refresh', () => {
  it('pre-produces once per certificate, walking on from where the last pass stopped', async () => {
    const s = site();
    for (let i = 0; i < 5; i++) s.store.issue();
    assert.equal(await s.preProducer.preProduceNew({ settleMs: 0, limit: 3 }), 3);
    assert.equal(await s.preProducer.preProduceNew({ settleMs: 0 }), 2);
    assert.equal(await s.preProducer.preProduceNew({ settleMs: 0 }), 0);
    assert.equal(s.signer.signatures, 5);
  });

  it('does nothing where the site may not act', async () => {
    const s = site({ canWrite: false });
    s.store.issue();
    assert.equal(await s.preProducer.preProduceNew({ settleMs: 0 }), 0);
    assert.equal(s.signer.signatures, 0);
  });

  it('refreshes responses near nextUpdate with the current status', async () => {
    const s = site({ validityMs: 60_000 });
    const serial = s.store.issue();
    await s.preProducer.preProduceNew({ settleMs: 0 });
    s.store.revoke(serial);
    assert.equal(await s.refresher.refreshExpiring(), 1, 'a minute left is less than the refresh margin');
    assert.equal(s.store.responses.get(`sha1:${serial.toString('hex')}`)?.status, 'revoked');
  });
});

describe('warming the cache from the store (the daemons produce in another process)', () => {
  /** A responder process of its own over the same store: what the daemons stored is not in its cache. */
  function otherProcess(s: ReturnType<typeof site>, cacheEntries?: number) {
    const cache = new OcspAnswerCache(undefined, cacheEntries);
    const responder = new OcspResponder(s.store, CA, issuer, new OcspSigning(issuer, s.signer), async () => true, cache);
    const warmer = new OcspCacheWarmer(s.store, CA, issuer, cache);
    const ask = async (serial: Buffer) => (await responder.respond(buildOcspRequest(buildCertId('sha1', issuer, serial)))).kind;
    return { cache, responder, warmer, ask };
  }

  it('at start loads every stored response; the first requests are answered without a database read', async () => {
    const s = site();
    const serials = Array.from({ length: 6 }, () => s.store.issue());
    s.store.revoke(serials[0]!);
    assert.equal(await s.preProducer.preProduceNew({ settleMs: 0 }), 6);
    const p = otherProcess(s);
    assert.equal(p.warmer.status.state, 'cold');
    assert.equal(await p.warmer.warmUp(), 6);
    assert.deepEqual(p.warmer.status, { state: 'warm', warmedUp: 6, followed: 0, ended: 'read-all' });
    const lookups = s.store.lookups;
    assert.deepEqual(await Promise.all(serials.map(p.ask)), ['revoked', 'good', 'good', 'good', 'good', 'good']);
    assert.equal(s.store.lookups, lookups, 'every answer came from the warmed cache');
  });

  it('loads nothing a lookup would not serve: another CA\'s, a stored status that is not the certificate\'s, a response naming another certificate, one near its nextUpdate', async () => {
    const s = site();
    const good = s.store.issue();
    const foreign = s.store.issue('other');
    const revokedLater = s.store.issue();
    const swapped = s.store.issue();
    await s.preProducer.preProduceNew({ settleMs: 0 });
    await s.store.saveOcspResponses([{ ...s.store.responses.get(`sha1:${good.toString('hex')}`)!, serial: foreign }]);
    // A "good" row left beside a revocation (the store deletes it in the revocation's transaction; a writer could put it back).
    const before = s.store.responses.get(`sha1:${revokedLater.toString('hex')}`)!;
    s.store.revoke(revokedLater);
    s.store.responses.set(`sha1:${revokedLater.toString('hex')}`, before);
    // Another certificate's signed response under this serial.
    s.store.responses.set(`sha1:${swapped.toString('hex')}`, { ...s.store.responses.get(`sha1:${good.toString('hex')}`)!, serial: swapped });
    const p = otherProcess(s);
    assert.equal(await p.warmer.warmUp(), 1, 'only the good one');
    assert.equal(p.cache.fresh('sha1', good)?.answer.kind, 'good');
    for (const serial of [foreign, revokedLater, swapped]) assert.equal(p.cache.fresh('sha1', serial), undefined);
    assert.equal(await p.ask(revokedLater), 'revoked');

    const short = site({ validityMs: 60_000 });
    short.store.issue();
    await short.preProducer.preProduceNew({ settleMs: 0 });
    assert.equal(await otherProcess(short).warmer.warmUp(), 0, 'a minute left is inside the refresh margin: looked up per request anyway');
  });

  it('stops at nine tenths of the cache\'s capacity', async () => {
    const s = site();
    for (let i = 0; i < 30; i++) s.store.issue();
    await s.preProducer.preProduceNew({ settleMs: 0 });
    const p = otherProcess(s, 10);
    await p.warmer.warmUp();
    assert.equal(p.cache.size, 9);
    assert.equal(p.warmer.status.ended, 'cache-full');
  });

  it('a warmed "good" is not served once a revocation has committed, before any watcher ran', async () => {
    const s = site();
    const serial = s.store.issue();
    await s.preProducer.preProduceNew({ settleMs: 0 });
    const p = otherProcess(s);
    await p.warmer.warmUp();
    s.store.revoke(serial);
    assert.equal(await p.ask(serial), 'revoked');
  });

  it('follows what is stored after it started (pre-produced elsewhere), and never puts a "good" over a revoked answer', async () => {
    const s = site();
    const p = otherProcess(s);
    await p.warmer.warmUp();
    const serials = Array.from({ length: 3 }, () => s.store.issue());
    await s.preProducer.preProduceNew({ settleMs: 0 });
    assert.equal(await p.warmer.follow(), false, 'no backlog left');
    assert.equal(p.warmer.status.followed, 3);
    const lookups = s.store.lookups;
    assert.deepEqual(await Promise.all(serials.map(p.ask)), ['good', 'good', 'good']);
    assert.equal(s.store.lookups, lookups);

    // The cache holds a re-signed revocation; a "good" for it read in bulk before the revocation arrives late.
    const late = s.store.responses.get(`sha1:${serials[1]!.toString('hex')}`)!;
    s.store.revoke(serials[1]!);
    await p.ask(serials[1]!);
    assert.equal(p.cache.offer('sha1', serials[1]!, { der: late.der, kind: 'good', thisUpdate: new Date(Date.now() + 1000), nextUpdate: late.nextUpdate }, s.store.generation), false);
    assert.equal(p.cache.fresh('sha1', serials[1]!)?.answer.kind, 'revoked');
    assert.equal(await p.warmer.follow(), false);
    assert.equal(await p.ask(serials[1]!), 'revoked');
  });
});
