import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { derTlv } from '@fleetpki/x509';
import { testRollover, testRoot } from './fixtures/root-rollover.js';
import { CmpMessageError, OID_IT_ROOT_CA_CERT, buildGenmRequest, encodeRootCaKeyUpdateContent, readPbmParameters, readPkiMessage, readRootCaKeyUpdateContent, verifyMacProtection } from './index.js';

const SECRET = Buffer.from('s3cret');
const OID_IT_SIGN_KEY_PAIR_TYPES = '1.3.6.1.5.5.7.4.3';

describe('buildGenmRequest', () => {
  it('reads back as the genm asked: header of RFC 9483 3.1, the infoTypes and their values as sent', () => {
    const root = testRoot('Test Root G1').der;
    const m = readPkiMessage(buildGenmRequest({ reference: 'factory-1', secret: SECRET, infos: [{ infoType: OID_IT_ROOT_CA_CERT, value: root }, { infoType: OID_IT_SIGN_KEY_PAIR_TYPES }] }));
    assert.equal(m.header.pvno, 2);
    assert.equal(m.header.senderKid?.toString(), 'factory-1');
    assert.equal(m.header.transactionId?.length, 16);
    assert.equal(m.header.senderNonce?.length, 16);
    assert.ok(Math.abs(m.header.messageTime!.getTime() - Date.now()) < 5_000);
    assert.deepEqual([m.header.sender, m.header.recipient].map((n) => n.toString('hex')), ['a4023000', 'a4023000'], 'NULL-DN');
    const p = readPbmParameters(m.header.protectionAlg!.parameters);
    assert.deepEqual([p.owf, p.mac, p.iterations, p.salt.length], ['sha256', 'sha256', 500, 16]);
    assert.equal(m.body.type, 'genm');
    if (m.body.type !== 'genm') return;
    assert.deepEqual(m.body.infoTypes, [OID_IT_ROOT_CA_CERT, OID_IT_SIGN_KEY_PAIR_TYPES]);
    assert.ok(m.body.infoValues[0]!.value?.equals(root), 'the root held, byte for byte');
    assert.equal(m.body.infoValues[1]!.value, undefined);
  });

  it('is MAC-protected with the secret: verifies with it, not with another', async () => {
    const m = readPkiMessage(buildGenmRequest({ reference: 'factory-1', secret: SECRET, infos: [{ infoType: OID_IT_ROOT_CA_CERT }], iterations: 1_000 }));
    assert.equal(readPbmParameters(m.header.protectionAlg!.parameters).iterations, 1_000);
    await verifyMacProtection(m, SECRET);
    await assert.rejects(verifyMacProtection(m, Buffer.from('s3creT')), (err: unknown) => err instanceof CmpMessageError && err.failInfo === 'badMessageCheck');
  });

  it('two requests never share a transactionID, nonce or salt', () => {
    const [a, b] = [0, 1].map(() => readPkiMessage(buildGenmRequest({ reference: 'factory-1', secret: SECRET, infos: [] })).header);
    assert.ok(!a!.transactionId!.equals(b!.transactionId!) && !a!.senderNonce!.equals(b!.senderNonce!));
    assert.ok(!a!.protectionAlg!.parameters!.equals(b!.protectionAlg!.parameters!));
  });
});

describe('RootCaKeyUpdateContent', () => {
  it('round trip, with and without the optional link certificates', () => {
    const update = testRollover(testRoot('Test Root G1'), testRoot('Test Root G2'));
    assert.deepEqual(readRootCaKeyUpdateContent(encodeRootCaKeyUpdateContent(update)), { newWithNew: update.newWithNew, newWithOld: update.newWithOld, oldWithNew: update.oldWithNew });
    assert.deepEqual(readRootCaKeyUpdateContent(encodeRootCaKeyUpdateContent({ newWithNew: update.newWithNew, oldWithNew: update.oldWithNew })), { newWithNew: update.newWithNew, oldWithNew: update.oldWithNew });
  });

  it('[0] and [1] are EXPLICIT: each wraps a whole Certificate; fields out of order are refused', () => {
    const { newWithNew, newWithOld, oldWithNew } = testRollover(testRoot('Test Root G1'), testRoot('Test Root G2'));
    const wrapped = derTlv(0xa0, newWithOld);
    assert.ok(encodeRootCaKeyUpdateContent({ newWithNew, newWithOld }).equals(derTlv(0x30, Buffer.concat([newWithNew, wrapped]))));
    const outer = derTlv(0x30, Buffer.concat([newWithNew, derTlv(0xa1, oldWithNew), wrapped]));
    assert.throws(() => readRootCaKeyUpdateContent(outer), (err: unknown) => err instanceof CmpMessageError && err.failInfo === 'badDataFormat');
  });
});
