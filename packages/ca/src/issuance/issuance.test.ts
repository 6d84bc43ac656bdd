import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, mock } from 'node:test';
import { isFleetError, parseEui64, type SiteId } from '@fleetpki/core';
import type { SigningKeyStore } from '@fleetpki/hsm';
import type { ActiveEnrolment, CaRecord, CertificateRow, ChunkCertificate, ChunkIntent, ChunkWork, IntentRow } from '@fleetpki/store';
import { DEFAULT_PROFILE_ID, assembleSignedCertificate, buildCaTbs, generateDeviceKeys, parseDevicePublicKey, readTlv, toPem } from '@fleetpki/x509';
import { ChunkIssuer } from './batch-chunk.js';
import { EnrolmentService } from './enrolment.js';
import type { ChunkStore, EnrolmentStore } from './store.js';
import { openIssuingCa, type IssuingCa } from './issuing-ca.js';
import { issuanceTime, prepareIssuance, rebuildIssuance } from './prepare-issuance.js';
import { StaleIntentRelease, type StaleIntentStore } from './stale-intents.js';

/**
 * The one issuance path (prepareIssuance) under online enrolment and batch chunks, with in-memory
 * stores behind their narrow interfaces and a software CA key: the order of intent and signature, a
 * chunk retried after a crash, the TBS each intent commits to. The PostgreSQL stores and the HSM are
 * covered by the integration tests (test/).
 */
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-issuance-'));
const caKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caSpki = caKeys.publicKey.export({ format: 'der', type: 'spki' });
const caTbs = buildCaTbs({ subject: { commonName: 'FPD1' }, serial: Buffer.from('0a0102030405060708', 'hex'), notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z'), publicKeySpki: caSpki, pathLength: 0 });
const caCert = assembleSignedCertificate(caTbs.der, sign('sha256', caTbs.der, caKeys.privateKey));
writeFileSync(join(dir, 'ca.pem'), toPem(caCert));

/** Counts signatures, so a test can see what was signed before an intent was committed. */
let signatures = 0;
const keyStore: SigningKeyStore = {
  tokenLabel: 'software',
  async getSigner() {
    return {
      algorithm: 'ecdsa-p256-sha256' as const,
      publicKeySpki: caSpki,
      async sign(data: Uint8Array) {
        signatures++;
        return sign('sha256', data, caKeys.privateKey);
      },
    };
  },
  generateSigningKey: () => Promise.reject(new Error('not in this test')),
  describeKey: () => Promise.reject(new Error('not in this test')),
  hasKey: async () => true,
  close: async () => undefined,
};
const record: CaRecord = { id: 'fpd1', kind: 'device-issuing', parentId: null, subjectDn: 'CN=FPD1', keyUri: 'pkcs11:token=software;object=fpd1', keyId: caTbs.keyId, certificate: caCert, notAfter: new Date('2050-01-01T00:00:00Z'), status: 'active' };
const active = { assertActive: async () => undefined };
const open = { site: { assertWritable: async () => undefined }, ca: active };

function opensslVerify(der: Buffer): string {
  const path = join(dir, `${createHash('sha256').update(der).digest('hex').slice(0, 12)}.pem`);
  writeFileSync(path, toPem(der));
  return execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-partial_chain', path], { encoding: 'utf8' }).trim();
}

/** The TBS of a DER certificate: the first element of its outer SEQUENCE, tag and length included. */
function tbsOf(der: Buffer): Buffer {
  const outer = readTlv(der, 0);
  const tbs = readTlv(der, outer.contentStart);
  return der.subarray(tbs.start, tbs.end);
}

/** A chunk in memory, as the PostgreSQL store would hand it out; `failStoreOnce` stands for a crash. */
class MemoryChunkStore implements ChunkStore {
  intents = new Map<number, ChunkIntent>();
  certificates: ChunkCertificate[] = [];
  refused: { seq: number; code: string }[] = [];
  signaturesWhenIntentsCommitted: number[] = [];
  done = false;
  failStoreOnce = false;

  constructor(private readonly items: ChunkWork['items']) {}

  async loadChunkWork(batchId: string): Promise<ChunkWork> {
    const batch = { id: batchId, manufacturerId: 'm', idempotencyKey: 'k', manifestSha256: Buffer.alloc(32), profile: DEFAULT_PROFILE_ID, status: 'issuing' as const, deviceCount: 0, itemCount: this.items.length, chunkCount: 1, chunkSize: 1000, skippedLines: 0, skipReport: [], signed: false, createdAt: new Date(), startedAt: new Date(), completedAt: null };
    const items = this.items.map((item) => {
      const intent = this.intents.get(item.seq);
      return { ...item, errorCode: this.refused.find((r) => r.seq === item.seq)?.code ?? null, intent: intent ? { serial: intent.serial, notBefore: intent.notBefore, tbsSha256: intent.tbsSha256 } : null };
    });
    return { batch, done: this.done, items };
  }

  async recordChunkIntents(_ctx: unknown, intents: readonly ChunkIntent[], refused: readonly { seq: number; code: string }[]): Promise<Set<number>> {
    this.signaturesWhenIntentsCommitted.push(signatures);
    for (const intent of intents) this.intents.set(intent.seq, intent);
    this.refused.push(...refused);
    return new Set(intents.map((i) => i.seq));
  }

  async completeChunk(_ctx: unknown, certificates: readonly ChunkCertificate[]): Promise<boolean> {
    if (this.failStoreOnce) {
      this.failStoreOnce = false;
      throw new Error('the worker died before its certificates were stored');
    }
    if (this.done) return false;
    this.certificates.push(...certificates);
    this.done = true;
    return true;
  }

  errors: string[] = [];
  async noteChunkError(_batchId: string, _chunkNo: number, message: string): Promise<void> {
    this.errors.push(message);
  }
}

function chunkItems(count: number): ChunkWork['items'] {
  return generateDeviceKeys(count).map((k, seq) => ({ seq, lineNo: seq + 1, eui64: Buffer.from(`00000000000000${seq.toString(16).padStart(2, '0')}`, 'hex'), keyRole: 'digitalSignature', deviceType: 'smart-meter', publicKey: k.publicKeySpki, csr: k.csr, errorCode: null, intent: null }));
}

async function issuingCa(): Promise<IssuingCa> {
  return openIssuingCa(record, keyStore, { crlBaseUrl: 'http://crl.example/crl/' });
}

describe('the one issuance path', () => {
  it('a chunk: intents committed before any signature, one certificate per item that openssl verifies, each the TBS its intent commits to; a CSR for another key refused', async () => {
    const ca = await issuingCa();
    const items = chunkItems(5);
    // Item 4's CSR is item 0's: its proof of possession is for another key than the stored one.
    const mixed = items.map((item, i) => (i === 4 ? { ...item, csr: items[0]!.csr } : item));
    const store = new MemoryChunkStore(mixed);
    const before = signatures;
    const outcome = await new ChunkIssuer(store, ca, 'a', 0x0a, active).issue('b1', 0);
    assert.deepEqual(outcome, { issued: 4, refused: 1, alreadyDone: false });
    assert.deepEqual(store.signaturesWhenIntentsCommitted, [before], 'nothing was signed before the intents were committed');
    assert.deepEqual(store.refused, [{ seq: 4, code: 'CSR_MALFORMED' }]);
    for (const cert of store.certificates) {
      assert.match(opensslVerify(cert.der), /: OK$/);
      const intent = [...store.intents.values()].find((i) => i.serial.equals(cert.serial))!;
      assert.ok(createHash('sha256').update(tbsOf(cert.der)).digest().equals(intent.tbsSha256), 'the certificate is the TBS its intent committed to');
      assert.equal(cert.serial[0], 0x0a, "the serial carries the site's prefix");
    }
  });

  it('a chunk retried after a crash re-signs exactly the TBSs its intents committed to: same serials, no new intents', async () => {
    const ca = await issuingCa();
    const store = new MemoryChunkStore(chunkItems(3));
    store.failStoreOnce = true;
    const issuer = new ChunkIssuer(store, ca, 'a', 0x0a, active);
    await assert.rejects(issuer.issue('b2', 0), /worker died/);
    const committed = new Map([...store.intents].map(([seq, i]) => [seq, i.serial.toString('hex')]));
    assert.equal(committed.size, 3);
    const outcome = await issuer.issue('b2', 0);
    assert.deepEqual(outcome, { issued: 3, refused: 0, alreadyDone: false });
    assert.equal(store.signaturesWhenIntentsCommitted.length, 1, 'the retry committed no new intents');
    assert.deepEqual(new Set(store.certificates.map((c) => c.serial.toString('hex'))), new Set(committed.values()));
    for (const cert of store.certificates) assert.match(opensslVerify(cert.der), /: OK$/);
    assert.deepEqual(await issuer.issue('b2', 0), { issued: 0, refused: 0, alreadyDone: true });
  });

  it('a rebuilt TBS that differs from its intent is refused (INTENT_MISMATCH), never signed', async () => {
    const ca = await issuingCa();
    const [key] = generateDeviceKeys(1);
    const subject = { profileId: DEFAULT_PROFILE_ID, keyRole: 'digitalSignature' as const, eui64: Buffer.from('0011223344556677', 'hex'), publicKeySpki: key!.publicKeySpki };
    const prepared = prepareIssuance(ca, 0x0a, subject, issuanceTime());
    assert.ok(rebuildIssuance(ca, subject, prepared, 'test').tbsSha256.equals(prepared.tbsSha256));
    const other = { ...subject, eui64: Buffer.from('0011223344556678', 'hex') };
    assert.throws(() => rebuildIssuance(ca, other, prepared, 'test'), (err: unknown) => isFleetError(err, 'INTENT_MISMATCH'));
  });

  it('online enrolment goes the same way: its intent commits to the TBS of the certificate it returns', async () => {
    const ca = await issuingCa();
    const intents: IntentRow[] = [];
    const stored: CertificateRow[] = [];
    const store: EnrolmentStore = {
      recordIntents: async (_site: SiteId, rows) => {
        intents.push(...rows);
        return new Set(rows.map((r) => r.serial.toString('hex')));
      },
      storeCertificates: async (_site, rows) => {
        stored.push(...rows);
        return new Set();
      },
      explainRefusedIntent: async () => 'already-enrolled',
      findActiveEnrolment: async (): Promise<ActiveEnrolment | undefined> => undefined,
      retireIntent: async () => false,
      staleOnlineIntents: async () => ({ serials: [], scannedUntil: new Date() }),
      findPresentedCertificate: async () => undefined,
      holdRequest: async () => assert.fail('no label is held here'),
    };
    const [key] = generateDeviceKeys(1);
    const service = new EnrolmentService(ca, store, 'a', 0x0a, open);
    const issued = await service.enrol({ eui64: parseEui64('00-11-22-33-44-55-66-77'), keyRole: 'digitalSignature', profileId: DEFAULT_PROFILE_ID, deviceType: 'smart-meter', publicKey: parseDevicePublicKey(key!.publicKeySpki.toString('base64')), manufacturerId: 'm', actor: 'test' });
    assert.match(opensslVerify(issued.der), /: OK$/);
    assert.equal(intents.length, 1);
    assert.ok(createHash('sha256').update(tbsOf(issued.der)).digest().equals(intents[0]!.tbsSha256));
    assert.ok(stored[0]!.serial.equals(intents[0]!.serial));
  });

  it("after a failover, an intent the other site left without a certificate is released at once, not after the intent timeout", async () => {
    const ca = await issuingCa();
    const abandoned = { serial: Buffer.from('0b0102030405060708', 'hex'), site: 'b' as const, createdAt: new Date(), ageSeconds: 2, batchId: null, certificate: null };
    let live: ActiveEnrolment | undefined = abandoned;
    const retired: unknown[] = [];
    const store: EnrolmentStore = {
      // The unique live intent refuses a second one until the abandoned one is retired.
      recordIntents: async (_site, rows) => (live ? new Set() : new Set(rows.map((r) => r.serial.toString('hex')))),
      storeCertificates: async () => new Set(),
      explainRefusedIntent: async () => 'already-enrolled',
      findActiveEnrolment: async () => live,
      retireIntent: async (_site, _actor, serial, why) => {
        retired.push({ serial: serial.toString('hex'), why });
        live = undefined;
        return true;
      },
      staleOnlineIntents: async () => ({ serials: [], scannedUntil: new Date() }),
      findPresentedCertificate: async () => undefined,
      holdRequest: async () => assert.fail('no label is held here'),
    };
    const [key] = generateDeviceKeys(1);
    const request = { eui64: parseEui64('00-11-22-33-44-55-66-78'), keyRole: 'digitalSignature' as const, profileId: DEFAULT_PROFILE_ID, deviceType: 'smart-meter', publicKey: parseDevicePublicKey(key!.publicKeySpki.toString('base64')), manufacturerId: 'm', actor: 'test' };
    const issued = await new EnrolmentService(ca, store, 'a', 0x0a, open, { intentTimeoutSeconds: 60 }).enrol(request);
    assert.match(opensslVerify(issued.der), /: OK$/);
    assert.deepEqual(retired, [{ serial: '0b0102030405060708', why: { kind: 'abandoned', bySite: 'b' } }]);

    // This site's own intent of 2 s is in flight here: the device waits (CERTIFICATE_PENDING), nothing is retired.
    live = { ...abandoned, site: 'a' };
    retired.length = 0;
    await assert.rejects(new EnrolmentService(ca, store, 'a', 0x0a, open, { intentTimeoutSeconds: 60 }).enrol(request), (err: unknown) => isFleetError(err, 'CERTIFICATE_PENDING'));
    assert.deepEqual(retired, []);
  });

  it('the stale-intent reconciler scans from where its last pass ended (the last hour at first), and every live intent once an hour', async () => {
    const asked: (string | null)[] = [];
    let failRetire = false;
    let until = new Date('2026-12-01T10:00:00Z');
    const store: StaleIntentStore = {
      retireIntent: async () => {
        if (failRetire) throw new Error('database gone');
        return true;
      },
      staleOnlineIntents: async (_timeout, createdFrom) => {
        asked.push(createdFrom?.toISOString() ?? null);
        return { serials: [Buffer.from('0a01', 'hex')], scannedUntil: until };
      },
    };
    const service = new StaleIntentRelease(store, 'a', 60);
    // The first full scan comes at a random moment of the first hour: here, half-way.
    mock.method(Math, 'random', () => 0.5);
    const t0 = 1_796_000_000_000;
    assert.equal(await service.releaseStaleIntents('test', t0), 1);
    until = new Date('2026-12-01T10:00:10Z');
    await service.releaseStaleIntents('test', t0 + 10_000);
    // A pass that fails is repeated from the same place.
    failRetire = true;
    await assert.rejects(service.releaseStaleIntents('test', t0 + 20_000));
    failRetire = false;
    await service.releaseStaleIntents('test', t0 + 30_000);
    await service.releaseStaleIntents('test', t0 + StaleIntentRelease.FULL_SCAN_EVERY_MS);
    mock.restoreAll();
    assert.deepEqual(asked, [new Date(t0 - 3_600_000 - 60_000).toISOString(), '2026-12-01T10:00:00.000Z', '2026-12-01T10:00:10.000Z', '2026-12-01T10:00:10.000Z', null]);
  });
});
