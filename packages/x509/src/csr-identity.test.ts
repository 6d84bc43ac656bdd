import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isFleetError } from '@fleetpki/core';
import { readCertificateDeviceId, readCsrDeviceId, readTemplateDeviceId } from './csr-identity.js';
import { parseCsr } from './csr.js';
import { certsOnly, estCsrAttributes, readEstBase64 } from './est-messages.js';

const dir = mkdtempSync(join(tmpdir(), 'fleetpki-csr-id-'));

/** A CSR made by OpenSSL: subject and an optional requested subjectAltName, as a factory tool makes one. */
function opensslCsr(subject: string, san?: string): Buffer {
  const cnf = join(dir, 'req.cnf');
  writeFileSync(cnf, `[req]\ndistinguished_name = dn\n${san ? 'req_extensions = ext\n' : ''}prompt = no\n[dn]\n${subject}\n${san ? `[ext]\nsubjectAltName = ${san}\n` : ''}[hmn]\nhwType = OID:1.3.6.1.4.1.65535.1.1.1\nhwSerialNum = FORMAT:HEX,OCT:0011223344556677\n[hmn2]\nhwType = OID:1.3.6.1.4.1.65535.1.1.1\nhwSerialNum = FORMAT:HEX,OCT:8899AABBCCDDEEFF\n[short]\nhwType = OID:1.3.6.1.4.1.65535.1.1.1\nhwSerialNum = FORMAT:HEX,OCT:0011\n`);
  return execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-config', cnf, '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'ignore'] });
}

const refused = (code: string) => (err: unknown) => isFleetError(err, code);

/** A self-signed certificate with that subject and subjectAltName (a device certificate's identity, for CMP's kur and rr). */
function opensslCertificate(subject: string, san?: string): Buffer {
  opensslCsr(subject, san); // writes req.cnf
  return execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-config', join(dir, 'req.cnf'), ...(san ? ['-extensions', 'ext'] : []), '-days', '1', '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'ignore'] });
}

describe('the device a CMP template or a certificate names', () => {
  it("a certificate's hardwareModuleName or subject serialNumber, by the CSR's rules", () => {
    assert.deepEqual(readCertificateDeviceId(opensslCertificate('O = maker', 'otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn')), { eui64: '0011223344556677', from: 'hardwareModuleName' });
    assert.deepEqual(readCertificateDeviceId(opensslCertificate('serialNumber = 0011223344556688')), { eui64: '0011223344556688', from: 'serialNumber' });
    assert.throws(() => readCertificateDeviceId(opensslCertificate('serialNumber = 0011223344556678', 'otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn')), refused('CSR_DEVICE_ID_CONFLICT'));
    assert.throws(() => readCertificateDeviceId(Buffer.from('3003020101', 'hex')), refused('CERTIFICATE_MALFORMED'));
  });

  it('a template without subject or extensions names no device; a broken Name is CSR_MALFORMED', () => {
    assert.throws(() => readTemplateDeviceId(undefined, undefined), refused('CSR_DEVICE_ID_MISSING'));
    assert.throws(() => readTemplateDeviceId(Buffer.from('3103', 'hex'), undefined), refused('CSR_MALFORMED'));
  });
});

describe('the device a CSR names (EST, CMP)', () => {
  it('reads the hardwareModuleName of a requested subjectAltName', () => {
    const csr = opensslCsr('O = maker', 'critical, otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn');
    parseCsr(csr);
    assert.deepEqual(readCsrDeviceId(csr), { eui64: '0011223344556677', from: 'hardwareModuleName' });
  });

  it('reads the subject serialNumber, with or without separators', () => {
    assert.deepEqual(readCsrDeviceId(opensslCsr('serialNumber = 00-11-22-33-44-55-66-aa\nCN = meter')), { eui64: '00112233445566AA', from: 'serialNumber' });
  });

  it('both, naming the same device: accepted; naming two: CSR_DEVICE_ID_CONFLICT', () => {
    assert.equal(readCsrDeviceId(opensslCsr('serialNumber = 0011223344556677', 'otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn')).from, 'hardwareModuleName');
    assert.throws(() => readCsrDeviceId(opensslCsr('serialNumber = 0011223344556678', 'otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn')), refused('CSR_DEVICE_ID_CONFLICT'));
    assert.throws(() => readCsrDeviceId(opensslCsr('O = maker', 'otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn, otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn2')), refused('CSR_DEVICE_ID_CONFLICT'));
  });

  it('none: CSR_DEVICE_ID_MISSING (a DNS name is not a device); not an EUI-64: CSR_DEVICE_ID_INVALID', () => {
    assert.throws(() => readCsrDeviceId(opensslCsr('CN = meter', 'DNS:meter.example')), refused('CSR_DEVICE_ID_MISSING'));
    assert.throws(() => readCsrDeviceId(opensslCsr('serialNumber = 12345')), refused('CSR_DEVICE_ID_INVALID'));
    assert.throws(() => readCsrDeviceId(opensslCsr('O = maker', 'otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:short')), refused('CSR_DEVICE_ID_INVALID'));
  });

  it('bytes that are not a CSR: CSR_MALFORMED, not a crash', () => {
    assert.throws(() => readCsrDeviceId(Buffer.from('3003020100', 'hex')), refused('CSR_MALFORMED'));
    assert.throws(() => readCsrDeviceId(Buffer.from('30', 'hex')), refused('CSR_MALFORMED'));
  });
});

describe('EST messages', () => {
  it('certs-only CMS that openssl opens, certificates byte for byte', () => {
    const pem = execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=t', '-days', '1'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const printed = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: certsOnly([der, der]) }).toString();
    const back = [...printed.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END/g)].map((m) => Buffer.from(m[1]!.replace(/\s/g, ''), 'base64'));
    assert.equal(back.length, 2);
    assert.ok(back.every((b) => b.equals(der)));
  });

  it('csrattrs parse as DER; base64 bodies with line breaks are read, anything else refused', () => {
    assert.match(execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: estCsrAttributes() }).toString(), /ecdsa-with-SHA256/);
    assert.deepEqual(readEstBase64('AAEC\r\nAwQF\n', 'x'), Buffer.from([0, 1, 2, 3, 4, 5]));
    assert.throws(() => readEstBase64('AAEC AwQF', 'x'), refused('EST_BODY_MALFORMED'));
    assert.throws(() => readEstBase64('AAE', 'x'), refused('EST_BODY_MALFORMED'));
  });
});
