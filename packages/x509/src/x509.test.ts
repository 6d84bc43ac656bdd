import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { assembleSignedCertificate, toPem } from './der.js';
import { DerError, readTlv } from './der-reader.js';
import { DeviceTemplate, type DeviceFields } from './device-template.js';
import { generateDeviceKeys } from './device-keys.js';
import { buildCaTbs, parseCaCertificate } from './ca-certificate.js';
import { parseCsr, verifyP256 } from './csr.js';
import { LintedTbs, lintDeviceTbs } from './lint.js';
import { getProfile } from './profiles.js';
import { P256_SPKI_PREFIX, parseDevicePublicKey, publicKeyFromSpki } from './public-key.js';

const dir = mkdtempSync(join(tmpdir(), 'fleetpki-x509-'));
function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// A software CA: unit tests check encoding; the HSM signing path is covered by the integration tests.
const caKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caSpki = caKeys.publicKey.export({ format: 'der', type: 'spki' });
const caTbs = buildCaTbs({ subject: { commonName: 'FPD1' }, serial: Buffer.from('0a0102030405060708', 'hex'), notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z'), publicKeySpki: caSpki, pathLength: 0 });
const caCert = assembleSignedCertificate(caTbs.der, sign('sha256', caTbs.der, caKeys.privateKey));
const caPath = join(dir, 'ca.pem');
writeFileSync(caPath, toPem(caCert));
const issuer = { caId: 'fpd1', subjectDer: parseCaCertificate(caCert).subjectDer, keyId: parseCaCertificate(caCert).keyId, crlBaseUrl: 'http://crl.example/crl/' };

function fields(overrides: Partial<DeviceFields> = {}): DeviceFields {
  return {
    serial: Buffer.concat([Buffer.from([0x0a]), randomBytes(8)]),
    notBefore: new Date('2026-06-01T10:00:00Z'),
    eui64: randomBytes(8),
    publicKeySpki: generateDeviceKeys(1)[0]!.publicKeySpki,
    crlShard: 5,
    ...overrides,
  };
}

function issue(template: DeviceTemplate, f: DeviceFields): Buffer {
  const tbs = lintDeviceTbs(template.assemble(f)).redeem();
  return assembleSignedCertificate(tbs.der, sign('sha256', tbs.der, caKeys.privateKey));
}

describe('device template', () => {
  for (const profileId of ['smart-meter', 'smart-meter-compact']) {
    for (const keyRole of ['digitalSignature', 'keyAgreement'] as const) {
      it(`${profileId}/${keyRole}: assembled bytes are a certificate OpenSSL verifies, with the per-device values in place`, () => {
        const template = new DeviceTemplate(getProfile(profileId), issuer, keyRole);
        const f = fields();
        const der = issue(template, f);
        const path = join(dir, `${profileId}-${keyRole}.pem`);
        writeFileSync(path, toPem(der));
        assert.match(openssl(['verify', '-partial_chain', '-CAfile', caPath, path]), /: OK/);
        // An independent parser reads back what we put in.
        const cert = new x509.X509Certificate(der);
        assert.equal(cert.serialNumber, f.serial.toString('hex'));
        assert.equal(cert.subject, '');
        assert.equal(cert.notBefore.toISOString(), f.notBefore.toISOString());
        assert.equal(Buffer.from(cert.publicKey.rawData).toString('hex'), f.publicKeySpki.toString('hex'));
        assert.ok(der.includes(Buffer.concat([Buffer.from([0x04, 0x08]), f.eui64])), 'EUI-64 as hwSerialNum');
        const ku = cert.getExtension(x509.KeyUsagesExtension)!;
        assert.equal(ku.critical, true);
        assert.equal(ku.usages, keyRole === 'digitalSignature' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.keyAgreement);
        assert.equal(cert.getExtension(x509.SubjectAlternativeNameExtension)!.critical, true);
        assert.equal(cert.getExtension(x509.SubjectKeyIdentifierExtension) !== null, profileId === 'smart-meter');
        assert.ok(der.length <= getProfile(profileId).derBudget, `${der.length} bytes > budget`);
        if (profileId === 'smart-meter') assert.match(openssl(['x509', '-in', path, '-noout', '-ext', 'crlDistributionPoints']), /http:\/\/crl\.example\/crl\/fpd1-5\.crl|fpd1/);
      });
    }
  }

  it('switches notBefore to GeneralizedTime from 2050 (RFC 5280 4.1.2.5) and still encodes valid DER', () => {
    const template = new DeviceTemplate(getProfile('smart-meter'), issuer, 'digitalSignature');
    const der = issue(template, fields({ notBefore: new Date('2051-03-04T05:06:07Z') }));
    const path = join(dir, 'y2051.pem');
    writeFileSync(path, toPem(der));
    assert.match(openssl(['x509', '-in', path, '-noout', '-startdate']), /Mar\s+4 05:06:07 2051 GMT/);
  });

  it('gives different certificates for different devices from one template (no state leaks between calls)', () => {
    const template = new DeviceTemplate(getProfile('smart-meter-compact'), issuer, 'digitalSignature');
    const a = fields();
    const b = fields();
    const tbsA = template.assemble(a).der;
    const tbsB = template.assemble(b).der;
    assert.notDeepEqual(tbsA, tbsB);
    assert.deepEqual(template.assemble(a).der, tbsA, 'same fields, same bytes');
  });
});

describe('pre-issuance lint', () => {
  const template = new DeviceTemplate(getProfile('smart-meter'), issuer, 'digitalSignature');

  it('refuses a serial without a random part, and a fractional-second notBefore', () => {
    assert.throws(() => lintDeviceTbs(template.assemble(fields({ serial: Buffer.from('0a0000000000000000', 'hex') }))), (err: Error & { code?: string }) => err.code === 'LINT_FAILED' && /serial_entropy/.test(err.message));
    assert.throws(() => lintDeviceTbs(template.assemble(fields({ notBefore: new Date('2026-11-24T10:00:00.5Z') }))), /validity_seconds/);
  });

  it('hands a linted TBS out once only, and cannot be forged', () => {
    const linted = lintDeviceTbs(template.assemble(fields()));
    linted.redeem();
    assert.throws(() => linted.redeem(), (err: Error & { code?: string }) => err.code === 'LINT_TOKEN_REUSED');
    // The constructor key is module-private: any other value is refused at run time too.
    const Forge = LintedTbs as unknown as new (key: symbol, tbs: unknown) => LintedTbs;
    assert.throws(() => new Forge(Symbol('lint'), linted.tbs), /lintDeviceTbs only/);
  });
});

describe('CSR and public keys', () => {
  it('builds minimal CSRs that OpenSSL verifies, and parses them back', () => {
    const [key] = generateDeviceKeys(1);
    const path = join(dir, 'device.csr');
    writeFileSync(path, toPem(key!.csr, 'CERTIFICATE REQUEST'));
    const out = execFileSync('openssl', ['req', '-in', path, '-noout', '-verify'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.doesNotMatch(out, /fail/i);
    assert.deepEqual(parseCsr(toPem(key!.csr, 'CERTIFICATE REQUEST')).spki, key!.publicKeySpki);
    assert.deepEqual(parseCsr(key!.csr).spki, key!.publicKeySpki);
  });

  it('parses an OpenSSL-made P-256 CSR', () => {
    const pem = execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=meter'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(parseCsr(pem).spki.length, 91);
  });

  it('accepts SPKI, bare uncompressed and compressed points, as base64, hex or PEM', () => {
    const [key] = generateDeviceKeys(1);
    const point = key!.publicKeySpki.subarray(P256_SPKI_PREFIX.length);
    const compressed = Buffer.concat([Buffer.from([2 + (point[64]! & 1)]), point.subarray(1, 33)]);
    for (const input of [key!.publicKeySpki.toString('base64'), point.toString('hex'), compressed.toString('hex'), toPem(key!.publicKeySpki, 'PUBLIC KEY')]) {
      assert.deepEqual(parseDevicePublicKey(input).spki, key!.publicKeySpki, input.slice(0, 20));
    }
  });

  it('refuses a point off the curve and names other key types', () => {
    const off = Buffer.concat([P256_SPKI_PREFIX, Buffer.from([4]), Buffer.alloc(64, 7)]);
    assert.throws(() => publicKeyFromSpki(off), (err: Error & { code?: string }) => err.code === 'PUBLIC_KEY_INVALID' && /not on the P-256 curve/.test(err.message));
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'der', type: 'spki' });
    assert.throws(() => publicKeyFromSpki(p384), /ECDSA P-384 keys are not accepted/);
    const ed = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
    assert.throws(() => publicKeyFromSpki(ed), /Ed25519 keys are not accepted/);
  });

  it('verifyP256 accepts the signature and refuses other data', () => {
    const [key] = generateDeviceKeys(1);
    const data = Buffer.from('meter');
    const signature = sign('sha256', data, key!.privateKey);
    const publicKey = publicKeyFromSpki(key!.publicKeySpki);
    assert.equal(verifyP256(publicKey, data, signature), true);
    assert.equal(verifyP256(publicKey, Buffer.from('metre'), signature), false);
  });
});

describe('DER reader', () => {
  const cases: [string, string, RegExp][] = [
    ['truncated', '3005020101', /claims 5 bytes/],
    ['indefinite length', '308002010100 00', /indefinite length/],
    ['non-minimal length', '30810302 0101', /non-minimal length/],
    ['lone byte', '30', /truncated/],
  ];
  for (const [name, hex, message] of cases) {
    it(`refuses ${name}`, () => {
      assert.throws(() => readTlv(Buffer.from(hex.replace(/ /g, ''), 'hex'), 0), (err: Error) => err instanceof DerError && message.test(err.message));
    });
  }
  it('reads a long-form length', () => {
    const der = Buffer.concat([Buffer.from('3081c8', 'hex'), Buffer.alloc(200)]);
    assert.deepEqual(readTlv(der, 0), { tag: 0x30, start: 0, contentStart: 3, end: 203 });
  });
});
