import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { assembleSignedCertificate, buildCaTbs } from '@fleetpki/x509';
import { describe, it, type TestContext } from 'node:test';
import { OID_IT_ROOT_CA_CERT, OID_IT_ROOT_CA_KEY_UPDATE, buildResponse, encodeRootCaKeyUpdateContent, readPkiMessage, verifyMacProtection, type ResponseBody } from '@fleetpki/cmp';
import { linkCertificate, testRollover, testRoot } from '../../cmp/src/fixtures/root-rollover.js';
import { requestRootCaKeyUpdate, verifyRootCaKeyUpdate } from './root-update.js';

const g1 = testRoot('Test Root G1');
const g2 = testRoot('Test Root G2');
const update = testRollover(g1, g2);
const SECRET = Buffer.from('s3cret');
const signedBy = (tbs: Buffer, key: KeyObject): [Buffer, Buffer] => [tbs, sign('sha256', tbs, key)];
const URL = 'http://ca.test/.well-known/cmp';

describe('verifyRootCaKeyUpdate: what a meter checks before it trusts the new root', () => {
  it('a genuine rollover: the new root, with or without OldWithNew', () => {
    assert.ok(verifyRootCaKeyUpdate(g1.der, update).equals(g2.der));
    assert.ok(verifyRootCaKeyUpdate(g1.der, { newWithNew: update.newWithNew, newWithOld: update.newWithOld }).equals(g2.der));
  });

  it('NewWithOld signed by another key than the held root: refused', () => {
    const forged = linkCertificate(g2, g1, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    assert.throws(() => verifyRootCaKeyUpdate(g1.der, { ...update, newWithOld: forged }), /NewWithOld does not verify under the held root's key/);
    // The same genuine update, for a meter holding another root.
    assert.throws(() => verifyRootCaKeyUpdate(testRoot('Test Root G1').der, update), /NewWithOld does not verify under the held root's key/);
  });

  it("a subordinate CA's genuine certificate (pathLen 0) with a self-signed twin of its key: refused, it is no root", () => {
    const fpd = testRoot('FPD1');
    const subordinate = assembleSignedCertificate(...signedBy(buildCaTbs({ subjectDer: fpd.subjectDer, issuerSubjectDer: g1.subjectDer, issuerKeyId: g1.keyId, publicKeySpki: fpd.spki, serial: Buffer.from('0a02', 'hex'), notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), pathLength: 0 }).der, g1.key));
    assert.throws(() => verifyRootCaKeyUpdate(g1.der, { newWithNew: fpd.der, newWithOld: subordinate }), /NewWithOld is not a root's certificate/);
  });

  it('a NewWithNew that is not the key NewWithOld certifies, a missing NewWithOld, a foreign OldWithNew: refused, each named', () => {
    const g3 = testRoot('Test Root G3');
    assert.throws(() => verifyRootCaKeyUpdate(g1.der, { ...update, newWithNew: g3.der }), /NewWithOld does not certify NewWithNew's subject and key/);
    assert.throws(() => verifyRootCaKeyUpdate(g1.der, { newWithNew: update.newWithNew }), /no NewWithOld/);
    assert.throws(() => verifyRootCaKeyUpdate(g1.der, { ...update, oldWithNew: linkCertificate(g3, g2) }), /OldWithNew does not carry the held root's subject and key/);
    assert.throws(() => verifyRootCaKeyUpdate(g1.der, { ...update, oldWithNew: linkCertificate(g1, g2, g3.key) }), /OldWithNew does not verify under the new key/);
  });
});

/** A CA on the other side of fetch: checks the genm's MAC and answers what `answer` gives for the root sent. */
function fakeCa(t: TestContext, answer: (held: Buffer | undefined) => ResponseBody, responseSecret = SECRET) {
  const seen: { url: string; contentType: string | null }[] = [];
  t.mock.method(globalThis, 'fetch', async (url: string, init: RequestInit) => {
    const request = readPkiMessage(init.body as Buffer);
    await verifyMacProtection(request, SECRET);
    seen.push({ url, contentType: new Headers(init.headers).get('content-type') });
    const asked = request.body.type === 'genm' ? request.body.infoValues[0] : undefined;
    assert.equal(asked?.infoType, OID_IT_ROOT_CA_CERT);
    const der = await buildResponse({ request, sender: Buffer.from('3000', 'hex'), protection: { kind: 'mac', secret: responseSecret } }, answer(asked?.value));
    return new Response(der, { headers: { 'content-type': 'application/pkixcmp' } });
  });
  return seen;
}

const genp = (value?: Buffer): ResponseBody => ({ type: 'genp', values: [{ infoType: OID_IT_ROOT_CA_KEY_UPDATE, ...(value ? { value } : {}) }] });

describe('requestRootCaKeyUpdate', () => {
  it('posts a MAC-protected genm with the root held and reads the update', async (t) => {
    const seen = fakeCa(t, (held) => genp(held?.equals(g1.der) ? encodeRootCaKeyUpdateContent(update) : undefined));
    const answer = await requestRootCaKeyUpdate(URL, { reference: 'factory-1', secret: SECRET, heldRoot: g1.der });
    assert.deepEqual(answer, { newWithNew: update.newWithNew, newWithOld: update.newWithOld, oldWithNew: update.oldWithNew });
    assert.ok(verifyRootCaKeyUpdate(g1.der, answer!).equals(g2.der));
    assert.deepEqual(seen, [{ url: URL, contentType: 'application/pkixcmp' }]);
  });

  it('no update (infoValue absent): undefined', async (t) => {
    fakeCa(t, () => genp());
    assert.equal(await requestRootCaKeyUpdate(URL, { reference: 'factory-1', secret: SECRET, heldRoot: g2.der }), undefined);
  });

  it("a CMP error answer: an Error with the CA's text", async (t) => {
    fakeCa(t, () => ({ type: 'error', failInfo: 'badRequest', text: "the root certificate sent in rootCaCert is not one of this CA's roots" }));
    await assert.rejects(requestRootCaKeyUpdate(URL, { reference: 'factory-1', secret: SECRET, heldRoot: g1.der }), /refused the root CA key update request: the root certificate sent in rootCaCert is not one of this CA's roots \(PKIFailureInfo bits 2/);
  });

  it('an answer MACed with another secret: refused', async (t) => {
    fakeCa(t, () => genp(encodeRootCaKeyUpdateContent(update)), Buffer.from('not-the-secret'));
    await assert.rejects(requestRootCaKeyUpdate(URL, { reference: 'factory-1', secret: SECRET }), /not MAC-protected with the secret of factory-1/);
  });
});
