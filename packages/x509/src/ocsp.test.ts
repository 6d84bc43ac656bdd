import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { derNode, derTlv, encodeDer } from './der.js';
import { assembleOcspResponse, buildOcspResponseData } from './ocsp.js';

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

describe('OCSP responses', () => {
  it('good, revoked with and without a reason, and unknown, as openssl reads them', () => {
    const certId = (serial: number) => Buffer.concat([Buffer.from('303b300906052b0e03021a05000414', 'hex'), randomBytes(20), Buffer.from('0414', 'hex'), randomBytes(20), Buffer.from([0x02, 0x02, 0x10, serial])]);
    const at = new Date('2026-12-02T10:00:00Z');
    const next = new Date('2026-12-09T10:00:00Z');
    const data = buildOcspResponseData(randomBytes(20), at, [
      { certId: certId(1), status: { status: 'good' }, thisUpdate: at, nextUpdate: next },
      { certId: certId(2), status: { status: 'revoked', revokedAt: new Date('2026-12-01T08:30:00Z'), reason: 1 }, thisUpdate: at, nextUpdate: next },
      { certId: certId(3), status: { status: 'revoked', revokedAt: new Date('2026-12-01T08:31:00Z'), reason: 0 }, thisUpdate: at, nextUpdate: next },
      { certId: certId(4), status: { status: 'unknown' }, thisUpdate: at, nextUpdate: next },
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
