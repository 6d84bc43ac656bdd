import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCaCertificate } from './ca-certificate.js';
import { derNode, derTlv, encodeDer } from './der.js';
import { childrenOf, readTlv } from './der-reader.js';
import { OcspMalformedError, assembleOcspResponse, buildCertId, buildOcspRequest, buildOcspResponseData, certIdMatchesIssuer, ocspIssuerHashes, ocspResponseCertIds, parseOcspRequest } from './ocsp.js';

describe('two-pass DER builder', () => {
  it('writes what derTlv writes, at every length form', () => {
    for (const n of [0, 1, 127, 128, 255, 256, 65_535, 65_536, 70_000]) {
      const content = randomBytes(n);
      assert.deepEqual(encodeDer(derNode(0x04, content)), derTlv(0x04, content), `length ${n}`);
      const nested = encodeDer(derNode(0x30, derNode(0x04, content), Buffer.from([5, 0])));
      assert.deepEqual(nested, derTlv(0x30, Buffer.concat([derTlv(0x04, content), Buffer.from([5, 0])])), `nested, length ${n}`);
    }
  });
});

/** A P-256 CA and a device certificate made by OpenSSL, and OpenSSL's own OCSP requests for it. */
function opensslFixture() {
  const dir = mkdtempSync(join(tmpdir(), 'ocsp-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=OCSP test CA', '-days', '1', '-out', 'ca.pem']);
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'dev.key', '-subj', '/CN=device', '-out', 'dev.csr']);
  // A serial whose first octet has the high bit set: its INTEGER needs the leading zero octet.
  run(['x509', '-req', '-in', 'dev.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x8a0102030405060708', '-days', '1', '-out', 'dev.pem']);
  const request = (alg: 'sha1' | 'sha256') => {
    run(['ocsp', '-issuer', 'ca.pem', `-${alg}`, '-cert', 'dev.pem', '-no_nonce', '-reqout', `${alg}.req`]);
    return readFileSync(join(dir, `${alg}.req`));
  };
  const ca = parseCaCertificate(run(['x509', '-in', 'ca.pem', '-outform', 'DER']));
  return { issuer: ocspIssuerHashes(ca.subjectDer, ca.publicKeySpki), serial: Buffer.from('8a0102030405060708', 'hex'), request };
}

/** The CertID inside a nonce-free request of one CertID: OCSPRequest > TBSRequest > requestList > Request > CertID. */
function certIdOf(request: Buffer): Buffer {
  return request.subarray(8);
}

const tlv = (tag: number, ...parts: Buffer[]) => derTlv(tag, Buffer.concat(parts));
const hex = (h: string) => Buffer.from(h, 'hex');

describe('OCSP requests', () => {
  const fixture = opensslFixture();

  it("reads OpenSSL's SHA-1 and SHA-256 requests, and builds the very CertID OpenSSL sent", () => {
    for (const alg of ['sha1', 'sha256'] as const) {
      const request = fixture.request(alg);
      const [id] = parseOcspRequest(request);
      assert.equal(id!.hashAlgorithm, alg);
      assert.deepEqual(id!.serial, fixture.serial, 'the serial value, without the sign octet');
      assert.ok(certIdMatchesIssuer(id!, fixture.issuer));
      assert.deepEqual(buildCertId(alg, fixture.issuer, id!.serial), certIdOf(request));
      assert.deepEqual(buildOcspRequest(certIdOf(request)), request);
    }
  });

  /** A request for a CertID of the given parts (each a whole TLV). */
  const requestOf = (algorithm: Buffer, serial: Buffer, version?: Buffer) => {
    const certIdDer = certIdOf(fixture.request('sha256'));
    const [, name, key] = childrenOf(certIdDer, readTlv(certIdDer, 0)).map((t) => certIdDer.subarray(t.start, t.end));
    const certId = tlv(0x30, algorithm, name!, key!, serial);
    return tlv(0x30, tlv(0x30, ...(version ? [version] : []), tlv(0x30, tlv(0x30, certId))));
  };
  const SHA256_OID = hex('0609608648016503040201');
  const NULL = hex('0500');
  const SERIAL = tlv(0x02, hex('008a0102030405060708'));
  const ALG = tlv(0x30, SHA256_OID, NULL);
  const SHA384_OID = hex('0609608648016503040202');

  it('takes absent and NULL hash parameters alike, and an explicit version v1', () => {
    const withNull = parseOcspRequest(requestOf(ALG, SERIAL));
    const absent = parseOcspRequest(requestOf(tlv(0x30, SHA256_OID), SERIAL));
    const v1 = parseOcspRequest(requestOf(ALG, SERIAL, hex('a003020100')));
    assert.deepEqual(absent, withNull);
    assert.deepEqual(v1, withNull);
    assert.equal(withNull[0]!.hashAlgorithm, 'sha256');
    assert.deepEqual(withNull[0]!.serial, fixture.serial);
  });

  it('reads a well-formed hash algorithm it does not answer for as such (the responder says unauthorized)', () => {
    const [id] = parseOcspRequest(requestOf(tlv(0x30, SHA384_OID, NULL), SERIAL));
    assert.equal(id!.hashAlgorithm, undefined);
    assert.equal(certIdMatchesIssuer(id!, fixture.issuer), false);
  });

  const refused: [string, Buffer, RegExp][] = [
    ['a serial padded with zero octets', requestOf(ALG, tlv(0x02, hex('00008a0102030405060708'))), /not minimally encoded/],
    ['a serial with a zero octet before a value that needs none', requestOf(ALG, tlv(0x02, hex('000a0102030405060708'))), /not minimally encoded/],
    ['a serial without its sign octet (negative)', requestOf(ALG, tlv(0x02, hex('8a0102030405060708'))), /negative/],
    ['a negative serial padded with 0xff', requestOf(ALG, tlv(0x02, hex('ff8a01'))), /not minimally encoded/],
    ['a zero serial', requestOf(ALG, tlv(0x02, hex('00'))), /zero/],
    ['an empty serial', requestOf(ALG, tlv(0x02)), /empty INTEGER/],
    ['a serial of 21 octets', requestOf(ALG, tlv(0x02, hex('00'), Buffer.alloc(21, 0x81))), /longer than 20 octets/],
    ['junk hash parameters', requestOf(tlv(0x30, SHA256_OID, hex('0404deadbeef')), SERIAL), /parameters must be absent or NULL/],
    ['NULL parameters with content', requestOf(tlv(0x30, SHA256_OID, hex('050100')), SERIAL), /parameters must be absent or NULL/],
    ['NULL parameters and more', requestOf(tlv(0x30, SHA256_OID, NULL, NULL), SERIAL), /extra data in hashAlgorithm/],
    ['parameters that are a SEQUENCE', requestOf(tlv(0x30, SHA256_OID, hex('3000')), SERIAL), /parameters must be absent or NULL/],
    ['junk parameters for an algorithm we do not answer for', requestOf(tlv(0x30, SHA384_OID, hex('0401ff')), SERIAL), /parameters must be absent or NULL/],
    ['an algorithm that is not an OBJECT IDENTIFIER', requestOf(tlv(0x30, hex('0409608648016503040201'), NULL), SERIAL), /hashAlgorithm.algorithm: expected tag 0x6/],
    ['an empty AlgorithmIdentifier', requestOf(hex('3000'), SERIAL), /truncated DER/],
    ['an empty OBJECT IDENTIFIER', requestOf(tlv(0x30, hex('0600'), NULL), SERIAL), /empty OBJECT IDENTIFIER/],
    ['an OBJECT IDENTIFIER with a padded subidentifier', requestOf(tlv(0x30, hex('060a60864801650304028001'), NULL), SERIAL), /not minimally encoded/],
    ['a truncated OBJECT IDENTIFIER', requestOf(tlv(0x30, hex('0609608648016503040281'), NULL), SERIAL), /truncated OBJECT IDENTIFIER/],
    ['version v2', requestOf(ALG, SERIAL, hex('a003020101')), /version must be v1/],
    ['version v1 as a padded INTEGER', requestOf(ALG, SERIAL, hex('a00402020000')), /version must be v1/],
  ];
  for (const [name, request, reason] of refused) {
    it(`refuses ${name} as malformed`, () => {
      assert.throws(() => parseOcspRequest(request), (err: Error) => err instanceof OcspMalformedError && reason.test(err.message));
    });
  }
});

describe('OCSP responses', () => {
  it('name each certificate by the canonical CertID, whatever the serial bytes given', () => {
    const issuer = ocspIssuerHashes(hex('300f310d300b06035504030c0446414b45'), Buffer.concat([Buffer.alloc(26), randomBytes(65)]));
    const at = new Date('2026-12-02T10:00:00Z');
    const data = buildOcspResponseData(issuer, at, [
      { hashAlgorithm: 'sha1', serial: hex('00000a01'), status: { status: 'good' }, thisUpdate: at, nextUpdate: at },
      { hashAlgorithm: 'sha256', serial: hex('8a01'), status: { status: 'good' }, thisUpdate: at, nextUpdate: at },
    ]);
    const response = assembleOcspResponse(data, hex('3006020101020101'));
    const ids = ocspResponseCertIds(response);
    assert.deepEqual(ids, [buildCertId('sha1', issuer, hex('0a01')), buildCertId('sha256', issuer, hex('8a01'))]);
    assert.deepEqual(ids[0]!.subarray(-4), hex('02020a01'), 'leading zero octets dropped');
    assert.deepEqual(ids[1]!.subarray(-5), hex('0203008a01'), 'the sign octet where the value needs it');
    assert.deepEqual(ocspResponseCertIds(hex('30030a0101')), [], 'an unsigned error response names no certificate');
  });

  it('good, revoked with and without a reason, and unknown, as openssl reads them', () => {
    const issuer = ocspIssuerHashes(randomBytes(40), randomBytes(91));
    const serial = (n: number) => Buffer.from([0x10, n]);
    const at = new Date('2026-12-02T10:00:00Z');
    const next = new Date('2026-12-09T10:00:00Z');
    const data = buildOcspResponseData(issuer, at, [
      { hashAlgorithm: 'sha1', serial: serial(1), status: { status: 'good' }, thisUpdate: at, nextUpdate: next },
      { hashAlgorithm: 'sha1', serial: serial(2), status: { status: 'revoked', revokedAt: new Date('2026-12-01T08:30:00Z'), reason: 1 }, thisUpdate: at, nextUpdate: next },
      { hashAlgorithm: 'sha256', serial: serial(3), status: { status: 'revoked', revokedAt: new Date('2026-12-01T08:31:00Z'), reason: 0 }, thisUpdate: at, nextUpdate: next },
      { hashAlgorithm: 'sha1', serial: serial(4), status: { status: 'unknown' }, thisUpdate: at, nextUpdate: next },
    ]);
    // A syntactically valid ECDSA-Sig-Value (r, s); openssl is not asked to verify it here.
    const signature = derTlv(0x30, Buffer.concat([derTlv(0x02, Buffer.concat([Buffer.from([1]), randomBytes(31)])), derTlv(0x02, Buffer.concat([Buffer.from([1]), randomBytes(31)]))]));
    const dir = mkdtempSync(join(tmpdir(), 'ocsp-'));
    writeFileSync(join(dir, 'resp.der'), assembleOcspResponse(data, signature));
    const text = execFileSync('openssl', ['ocsp', '-respin', join(dir, 'resp.der'), '-resp_text', '-noverify'], { encoding: 'utf8' });
    assert.match(text, /OCSP Response Status: successful/);
    assert.match(text, /Produced At: Dec\s+2 10:00:00 2026 GMT/);
    assert.equal(text.match(/Cert Status: good/g)?.length, 1);
    assert.equal(text.match(/Cert Status: revoked/g)?.length, 2);
    assert.equal(text.match(/Cert Status: unknown/g)?.length, 1);
    assert.match(text, /Revocation Time: Dec\s+1 08:30:00 2026 GMT\s+Revocation Reason: keyCompromise \(0x1\)/);
    assert.match(text, /Revocation Time: Dec\s+1 08:31:00 2026 GMT\s+This Update/);
    assert.equal(text.match(/Next Update: Dec\s+9 10:00:00 2026 GMT/g)?.length, 4);
  });
});
