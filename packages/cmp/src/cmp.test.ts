import assert from 'node:assert/strict';
import { X509Certificate, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { readCsr } from '@fleetpki/x509';
import { CmpMessageError, MAX_PBM_ITERATIONS, readPbmParameters, readPkiMessage, verifyMacProtection, verifyPop, verifySignatureProtection, type PkiMessage } from './index.js';

/** Requests captured from `openssl cmp -reqout` (fixtures/README.md says how). */
const golden = (name: string) => readFileSync(new URL(`./fixtures/${name}.der`, import.meta.url));
const certificate = (name: string) => new X509Certificate(readFileSync(new URL(`./fixtures/${name}.pem`, import.meta.url)));
const SECRET = Buffer.from('s3cret');
const factory = certificate('factory');
const deviceOld = certificate('device-old');

function refusal(fn: () => unknown, failInfo: string): void {
  assert.throws(fn, (err: unknown) => err instanceof CmpMessageError && err.failInfo === failInfo, `expected a CmpMessageError ${failInfo}`);
}

async function refusalOf(fn: () => Promise<unknown>, failInfo: string): Promise<void> {
  await assert.rejects(fn, (err: unknown) => err instanceof CmpMessageError && err.failInfo === failInfo, `expected a CmpMessageError ${failInfo}`);
}

/** A copy with one byte changed at `at` (xor 0x01). */
function flipped(der: Buffer, at: number): Buffer {
  const copy = Buffer.from(der);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

/** The offset of the last occurrence of `needle` in `der` (the body comes after the header). */
function offsetOf(der: Buffer, needle: Buffer): number {
  const at = der.lastIndexOf(needle);
  assert.ok(at >= 0, 'the bytes occur');
  return at;
}

const subjectSerial = Buffer.from('0011223344556677');

describe('CMP requests from openssl cmp', () => {
  it('ir with a password-based MAC: header, template, MAC with the factory secret, signature POP', async () => {
    const m = readPkiMessage(golden('ir'));
    assert.equal(m.body.type, 'ir');
    assert.equal(m.header.pvno, 2);
    assert.equal(m.header.senderKid?.toString(), 'factory-1');
    assert.equal(m.header.transactionId?.length, 16);
    assert.equal(m.header.senderNonce?.length, 16);
    assert.ok(m.header.messageTime instanceof Date);
    await verifyMacProtection(m, SECRET);
    await refusalOf(() => verifyMacProtection(m, Buffer.from('s3creT')), 'badMessageCheck');
    if (m.body.type !== 'ir') return;
    const [request] = m.body.requests;
    assert.equal(request!.certReqId, 0);
    assert.ok(request!.template.subject!.includes(subjectSerial));
    verifyPop(request!);
  });

  it('p10cr carries a PKCS#10 request the CSR reader accepts; MAC-protected', async () => {
    const m = readPkiMessage(golden('p10cr'));
    assert.equal(m.body.type, 'p10cr');
    await verifyMacProtection(m, SECRET);
    if (m.body.type !== 'p10cr') return;
    // The CSR's key is the device key the fixtures were made with (device-old.pem's key).
    assert.deepEqual(readCsr(m.body.csr).publicKey.spki, deviceOld.publicKey.export({ format: 'der', type: 'spki' }));
  });

  it('cr signed with a factory certificate: the protection verifies with it, not with another', async () => {
    const m = readPkiMessage(golden('cr'));
    assert.equal(m.body.type, 'cr');
    assert.equal(m.extraCerts.length, 0, 'OpenSSL 3.0 leaves a self-signed protecting certificate out of extraCerts');
    // senderKID is the protecting certificate's subject key identifier: how a server finds it without extraCerts.
    assert.equal(m.header.senderKid?.toString('hex'), '1ebafea09737d5bd0d5a6b95b187df1bdb86c6b9');
    assert.equal(verifySignatureProtection(m, factory), factory);
    refusal(() => verifySignatureProtection(m, deviceOld), 'badMessageCheck');
    refusal(() => verifySignatureProtection(m), 'badMessageCheck');
    await refusalOf(() => verifyMacProtection(m, SECRET), 'badMessageCheck');
  });

  it('kur signed with the old device key; the new key proves possession', () => {
    const m = readPkiMessage(golden('kur'));
    assert.equal(m.body.type, 'kur');
    verifySignatureProtection(m, deviceOld);
    if (m.body.type !== 'kur') return;
    const [request] = m.body.requests;
    verifyPop(request!);
    assert.notDeepEqual(request!.template.publicKey, deviceOld.publicKey.export({ format: 'der', type: 'spki' }), 'a new key');
  });

  it('rr names the old certificate by issuer and serial, with reason keyCompromise', () => {
    const m = readPkiMessage(golden('rr'));
    verifySignatureProtection(m, deviceOld);
    assert.equal(m.body.type, 'rr');
    if (m.body.type !== 'rr') return;
    assert.equal(m.body.revocations.length, 1);
    assert.equal(m.body.revocations[0]!.reason, 1);
    assert.equal(m.body.revocations[0]!.template.serialNumber!.toString('hex').toUpperCase(), deviceOld.serialNumber.replace(/^0+/, ''));
  });

  it('genm asks by infoType OID; MAC-protected', async () => {
    const m = readPkiMessage(golden('genm'));
    await verifyMacProtection(m, SECRET);
    assert.deepEqual(m.body.type === 'genm' ? m.body.infoTypes : [], ['1.3.6.1.5.5.7.4.2']);
  });
});

describe('tampered CMP requests', () => {
  it('a flipped bit in the protected part: badMessageCheck (MAC and signature)', async () => {
    for (const [name, check] of [
      ['ir', (m: PkiMessage) => verifyMacProtection(m, SECRET)],
      ['cr', async (m: PkiMessage) => verifySignatureProtection(m, factory)],
    ] as const) {
      const der = golden(name);
      const tampered = flipped(der, offsetOf(der, subjectSerial) + 3);
      await refusalOf(() => check(readPkiMessage(tampered)), 'badMessageCheck');
    }
  });

  it('a flipped bit in the protection itself: badMessageCheck', async () => {
    const der = golden('ir');
    await refusalOf(() => verifyMacProtection(readPkiMessage(flipped(der, der.length - 1)), SECRET), 'badMessageCheck');
  });

  it('another sender KID (factory-2 presenting factory-1 MAC): badMessageCheck', async () => {
    const der = golden('ir');
    const at = offsetOf(der, Buffer.from('factory-1'));
    const other = Buffer.from(der);
    Buffer.from('factory-2').copy(other, at);
    await refusalOf(() => verifyMacProtection(readPkiMessage(other), SECRET), 'badMessageCheck');
  });

  it('an iteration count past MAX_PBM_ITERATIONS is refused when the parameters are read (badAlg), before any secret is looked up', async () => {
    const der = golden('ir');
    // openssl sends 500 (INTEGER 01f4); 2,001 (07d1) is one past the cap, 2,000 (07d0) the cap itself.
    const at = offsetOf(der, Buffer.from('020201f4', 'hex'));
    const withCount = (hex: string) => {
      const copy = Buffer.from(der);
      Buffer.from(hex, 'hex').copy(copy, at + 2);
      return readPkiMessage(copy);
    };
    assert.equal(MAX_PBM_ITERATIONS, 2_000);
    refusal(() => readPbmParameters(withCount('07d1').header.protectionAlg!.parameters), 'badAlg');
    assert.equal(readPbmParameters(withCount('07d0').header.protectionAlg!.parameters).iterations, 2_000);
    // The cap's own count is read and computed: it only fails to verify (the MAC was made with 500).
    await refusalOf(() => verifyMacProtection(withCount('07d0'), SECRET), 'badMessageCheck');
  });

  it('a changed template key breaks the proof of possession: badPOP', () => {
    const m = readPkiMessage(golden('ir'));
    if (m.body.type !== 'ir') throw new Error('ir expected');
    const request = m.body.requests[0]!;
    // Another valid P-256 key put in the template: the signature was made with the first one.
    const key = factory.publicKey.export({ format: 'der', type: 'spki' });
    refusal(() => verifyPop({ ...request, template: { ...request.template, publicKey: key } }), 'badPOP');
  });

  it('fuzz: mutated requests are read or refused with a CMP failInfo, never another error', async () => {
    for (const name of ['ir', 'p10cr', 'cr', 'kur', 'rr', 'genm']) {
      const der = golden(name);
      for (let i = 0; i < 1_500; i++) {
        const mutated = Buffer.from(der);
        const edits = 1 + randomInt(3);
        for (let e = 0; e < edits; e++) mutated[randomInt(mutated.length)] = randomInt(256);
        const cut = randomInt(8) === 0 ? mutated.subarray(0, randomInt(mutated.length)) : mutated;
        try {
          const m = readPkiMessage(cut);
          try {
            if (m.header.protectionAlg?.oid === '1.2.840.113533.7.66.13') await verifyMacProtection(m, SECRET);
            else verifySignatureProtection(m, factory);
          } catch (err) {
            assert.ok(err instanceof CmpMessageError, `${name}: protection check threw ${String(err)}`);
          }
        } catch (err) {
          assert.ok(err instanceof CmpMessageError, `${name} mutation ${i}: ${String(err)}`);
        }
      }
    }
  });
});
