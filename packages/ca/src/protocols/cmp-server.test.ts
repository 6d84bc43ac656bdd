import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FleetError, type FleetConfig } from '@fleetpki/core';
import { OID_IT_ROOT_CA_CERT, OID_IT_ROOT_CA_KEY_UPDATE, buildGenmRequest, readPkiMessage, readRootCaKeyUpdateContent, verifyMacProtection, type PkiMessage } from '@fleetpki/cmp';
import type { CmpTransactionRecord } from '@fleetpki/store';
import { derTlv, inlinePossessionVerifier } from '@fleetpki/x509';
import { testRollover, testRoot } from '../../../cmp/src/fixtures/root-rollover.js';
import type { CmpProtectionKey } from '../access/cmp-credentials.js';
import type { RootCaKeyUpdate } from '../custody/root-generations.js';
import type { EnrolmentRequest, IssuedCertificate } from '../issuance/enrolment.js';
import { enrolmentLabel } from '../issuance/enrolment-labels.js';
import { CmpServer } from './cmp-server.js';
import type { CmpStore, ProtocolAuditRow } from './store.js';

/**
 * The CMP server's RA logic with in-memory ports: requests captured from `openssl cmp` (packages/cmp
 * fixtures: MAC-protected with reference factory-1 and secret s3cret), answered, and the transaction
 * rows and audit rows each leaves. The wire with a real client is test/cmp.test.ts.
 */
const golden = (name: string) => readFileSync(new URL(`../../../cmp/src/fixtures/${name}.der`, import.meta.url));
const someCertificate = new X509Certificate(readFileSync(new URL('../../../cmp/src/fixtures/factory.pem', import.meta.url))).raw;
/** RFC 4210 5.2.3 PKIFailureInfo bit numbers, as the answers carry them. */
const BIT = { badMessageCheck: 1, badRequest: 2, transactionIdInUse: 21, systemUnavail: 24, notAuthorized: 23 } as const;

type Row = { -readonly [K in keyof CmpTransactionRecord]: CmpTransactionRecord[K] };

/** A CmpStore over a Map, with the same rules as migrations/0023_cmp.sql's: one row per transactionID, moves only from the status named. */
function memoryCmpStore() {
  const rows = new Map<string, Row>();
  const audit: ProtocolAuditRow[] = [];
  const store: CmpStore = {
    async openTransaction(t) {
      const key = t.transactionId.toString('hex');
      if (rows.has(key)) return false;
      rows.set(key, { transactionId: t.transactionId, bodyType: t.bodyType, sender: t.sender, status: 'open', certificateSerial: null, certificateSha256: null, responseNonce: null, issuedInTransaction: false });
      return true;
    },
    getTransaction: async (id) => rows.get(id.toString('hex')),
    findDeviceCertificate: async () => undefined,
    async settleTransaction(id, from, to, values = {}, row) {
      const t = rows.get(id.toString('hex'));
      if (!t || t.status !== from) return false;
      t.status = to;
      t.certificateSerial = values.certificateSerial ?? t.certificateSerial;
      t.certificateSha256 = values.certificateSha256 ?? t.certificateSha256;
      t.responseNonce = values.responseNonce ?? t.responseNonce;
      t.issuedInTransaction ||= values.issuedInTransaction ?? false;
      if (row) audit.push(row);
      return true;
    },
  };
  return { store, rows, audit };
}

const config = { cmp: { maxClockSkewSeconds: 1e10, implicitConfirm: true } } as unknown as FleetConfig;
/** Answers to senders not proven (no MAC secret to answer with) are signed by the site's CMP key. */
const responseKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const protectionKey: CmpProtectionKey = { certificate: someCertificate, chain: [someCertificate, someCertificate], subjectDer: derTlv(0x30, Buffer.alloc(0)), keyId: Buffer.alloc(20, 1), sign: async (data) => sign('sha256', data, responseKey) };
const issued: IssuedCertificate = { serial: Buffer.from('7a0102', 'hex'), der: someCertificate, notBefore: new Date(), notAfter: new Date(), crlShard: 0, reused: false };

function server(options: { enrol?: (r: EnrolmentRequest & { manufacturerId: string }) => Promise<IssuedCertificate>; writable?: () => Promise<void>; secret?: string; chainDer?: Buffer[]; rootUpdates?: RootCaKeyUpdate[] } = {}) {
  const memory = memoryCmpStore();
  const enrolled: (EnrolmentRequest & { manufacturerId: string })[] = [];
  const counted: string[] = [];
  const cmp = new CmpServer({
    config,
    enrolment: {
      enrol: async (r) => {
        enrolled.push(r);
        return options.enrol ? options.enrol(r) : issued;
      },
      renew: () => Promise.reject(new Error('no renewal here')),
    },
    revocations: { revoke: () => Promise.reject(new Error('no revocation here')) },
    possession: inlinePossessionVerifier,
    secrets: { secretFor: async (reference) => (reference === 'factory-1' ? { secret: Buffer.from(options.secret ?? 's3cret'), manufacturerId: 'acme', version: 1 } : undefined) },
    protectionKey: async () => protectionKey,
    clientCertificates: { authenticate: () => Promise.reject(new Error('no people here')) },
    store: memory.store,
    guard: { assertWritable: options.writable ?? (async () => undefined) },
    caGuard: { assertActive: async () => undefined },
    caId: 'fpd1',
    chainDer: options.chainDer ?? [someCertificate, someCertificate],
    threshold: { certificates: 10, windowMinutes: 60 },
    onIssued: (profile, keyRole) => counted.push(`${profile}/${keyRole}`),
    ...(options.rootUpdates ? { rootUpdates: options.rootUpdates } : {}),
  });
  return { cmp, ...memory, enrolled, counted };
}

const label = enrolmentLabel(undefined);

function errorOf(answer: { der: Buffer }): { failInfo: readonly number[]; texts: readonly string[] } {
  const body = readPkiMessage(answer.der).body;
  assert.equal(body.type, 'error');
  return body as Extract<PkiMessage['body'], { type: 'error' }>;
}

describe('CmpServer (RA logic, in-memory ports)', () => {
  it('ir with the factory MAC: enrolled as the reference manufacturer over cmp, answered ip, the transaction waits for certConf with the nonce sent', async () => {
    const s = server();
    const request = readPkiMessage(golden('ir'));
    let authenticated = false;
    const answer = await s.cmp.handle(golden('ir'), label, () => (authenticated = true));
    assert.equal(answer.httpStatus, 200);
    assert.ok(answer.authenticated && authenticated);
    const response = readPkiMessage(answer.der);
    assert.equal(response.body.type, 'ip');
    assert.equal(s.enrolled.length, 1);
    assert.equal(s.enrolled[0]!.manufacturerId, 'acme');
    assert.equal(s.enrolled[0]!.protocol, 'cmp');
    assert.equal(s.enrolled[0]!.actor, 'factory:acme via cmp-reference:factory-1');
    const row = s.rows.get(request.header.transactionId!.toString('hex'))!;
    assert.equal(row.status, 'waiting');
    assert.equal(row.bodyType, 'ir');
    assert.ok(row.certificateSerial?.equals(issued.serial));
    assert.ok(row.issuedInTransaction);
    assert.ok(row.responseNonce?.equals(response.header.senderNonce!), 'the senderNonce answered is kept for certConf');
    assert.deepEqual(s.counted, [`${label.profileId}/${label.keyRole}`]);
    assert.equal(s.audit.length, 0, 'nothing confirmed yet');
  });

  it('the same transactionID again is refused (transactionIdInUse) and enrols nothing more', async () => {
    const s = server();
    await s.cmp.handle(golden('ir'), label);
    const again = await s.cmp.handle(golden('ir'), label);
    assert.equal(again.httpStatus, 200);
    assert.deepEqual(errorOf(again).failInfo, [BIT.transactionIdInUse]);
    assert.equal(s.enrolled.length, 1);
  });

  it('a wrong secret: badMessageCheck, not authenticated, nothing opened', async () => {
    const s = server({ secret: 's3creT' });
    const answer = await s.cmp.handle(golden('ir'), label);
    assert.equal(answer.authenticated, false);
    assert.deepEqual(errorOf(answer).failInfo, [BIT.badMessageCheck]);
    assert.equal(s.rows.size, 0);
  });

  it('a refused enrolment settles the transaction refused and answers its failInfo (CERTIFICATE_EXISTS: badRequest)', async () => {
    const s = server({ enrol: () => Promise.reject(new FleetError('CERTIFICATE_EXISTS', 'taken', { httpStatus: 409 })) });
    const answer = await s.cmp.handle(golden('p10cr'), label);
    assert.equal(answer.httpStatus, 200);
    const error = errorOf(answer);
    assert.deepEqual(error.failInfo, [BIT.badRequest]);
    assert.match(error.texts[0]!, /^CERTIFICATE_EXISTS: taken/);
    assert.deepEqual([...s.rows.values()].map((r) => [r.bodyType, r.status]), [['p10cr', 'refused']]);
  });

  it('a site that cannot write: 503 with Retry-After and systemUnavail, checked before the transaction is opened', async () => {
    const s = server({ writable: () => Promise.reject(new FleetError('SITE_STANDBY', 'this site is the standby', { httpStatus: 503 })) });
    const answer = await s.cmp.handle(golden('ir'), label);
    assert.equal(answer.httpStatus, 503);
    assert.equal(answer.retryAfterSeconds, 10);
    assert.deepEqual(errorOf(answer).failInfo, [BIT.systemUnavail]);
    assert.equal(s.rows.size, 0);
    assert.equal(s.enrolled.length, 0);
  });

  it('genm: the key types asked for, in a genp; no transaction row', async () => {
    const s = server();
    const answer = await s.cmp.handle(golden('genm'), label);
    assert.equal(readPkiMessage(answer.der).body.type, 'genp');
    assert.equal(s.rows.size, 0);
  });

  it('a message that is not CMP at all: a CMP error answer, not authenticated', async () => {
    const s = server();
    const answer = await s.cmp.handle(Buffer.from('not der'), label);
    assert.equal(answer.authenticated, false);
    assert.equal(answer.httpStatus, 200);
    assert.equal(readPkiMessage(answer.der).body.type, 'error');
  });
});

describe('CmpServer genm rootCaCert: the root CA key update (RFC 9483 4.3.2)', () => {
  // Three root generations: G1 was replaced by G2, G2 by G3 (the current root, last in the chain).
  const g1 = testRoot('Test Root G1');
  const g2 = testRoot('Test Root G2');
  const g3 = testRoot('Test Root G3');
  const rootUpdates = [testRollover(g1, g2), testRollover(g2, g3)];
  const rolledOver = () => server({ chainDer: [someCertificate, g3.der], rootUpdates });
  const genm = (value?: Buffer) => buildGenmRequest({ reference: 'factory-1', secret: Buffer.from('s3cret'), infos: [{ infoType: OID_IT_ROOT_CA_CERT, ...(value ? { value } : {}) }] });

  /** The genp's one InfoTypeAndValue: always id-it-rootCaKeyUpdate, whatever was asked. */
  async function answerTo(s: ReturnType<typeof server>, request: Buffer) {
    const answer = await s.cmp.handle(request, label);
    const response = readPkiMessage(answer.der);
    await verifyMacProtection(response, Buffer.from('s3cret'));
    assert.equal(response.body.type, 'genp', JSON.stringify(response.body));
    if (response.body.type !== 'genp') throw new Error('genp expected');
    assert.deepEqual(response.body.infoTypes, [OID_IT_ROOT_CA_KEY_UPDATE]);
    assert.equal(s.rows.size, 0, 'no transaction row');
    return response.body.infoValues[0]!.value;
  }

  it('the current root held: id-it-rootCaKeyUpdate without a value (no update)', async () => {
    assert.equal(await answerTo(rolledOver(), genm(g3.der)), undefined);
    // Before any rollover the current root is the chain's last certificate.
    assert.equal(await answerTo(server({ chainDer: [someCertificate, g1.der] }), genm(g1.der)), undefined);
  });

  it("a replaced root held: that root's update (G1 gets G2 with its links; G2 then gets G3)", async () => {
    assert.deepEqual(readRootCaKeyUpdateContent((await answerTo(rolledOver(), genm(g1.der)))!), { newWithNew: g2.der, newWithOld: rootUpdates[0]!.newWithOld, oldWithNew: rootUpdates[0]!.oldWithNew });
    assert.deepEqual(readRootCaKeyUpdateContent((await answerTo(rolledOver(), genm(g2.der)))!), { newWithNew: g3.der, newWithOld: rootUpdates[1]!.newWithOld, oldWithNew: rootUpdates[1]!.oldWithNew });
  });

  it('no root sent: the latest update; none before a rollover', async () => {
    assert.ok(readRootCaKeyUpdateContent((await answerTo(rolledOver(), genm()))!).newWithNew.equals(g3.der));
    assert.equal(await answerTo(server(), genm()), undefined);
  });

  it("a root that is not one of this CA's: badRequest, saying so", async () => {
    const answer = await rolledOver().cmp.handle(genm(testRoot('Somebody Else Root').der), label);
    assert.ok(answer.authenticated);
    const error = errorOf(answer);
    assert.deepEqual(error.failInfo, [BIT.badRequest]);
    assert.match(error.texts[0]!, /not one of this CA's roots/);
  });

  it('a genm without infoType still answers caCerts, signKeyPairTypes and certReqTemplate only', async () => {
    const answer = await rolledOver().cmp.handle(buildGenmRequest({ reference: 'factory-1', secret: Buffer.from('s3cret'), infos: [] }), label);
    const body = readPkiMessage(answer.der).body;
    assert.deepEqual(body.type === 'genp' ? body.infoTypes : body, ['1.3.6.1.5.5.7.4.17', '1.3.6.1.5.5.7.4.3', '1.3.6.1.5.5.7.4.19']);
  });
});
