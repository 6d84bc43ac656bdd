import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { TLS_PARTS } from '@fleetpki/core';
import type { InternalTlsRecord } from '@fleetpki/store';
import { assembleSignedCertificate, buildCaTbs, buildOrganisationTbs, lintOrganisationProblems, type OrganisationCertificateRequest } from '@fleetpki/x509';
import { INTERNAL_TLS_PROFILES, describeInternalTls, internalTlsNames, internalTlsPart, rotationPlan } from './internal-tls.js';

/** The per-part profile of internal TLS certificates, their lint, and what `rotate` picks; no database. */
const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caTbs = buildCaTbs({ subject: { organization: 'fleetpki', commonName: 'fleetpki organisation CA' }, serial: Buffer.from('0b0102030405060708', 'hex'), notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z'), publicKeySpki: ca.publicKey.export({ format: 'der', type: 'spki' }), pathLength: 0 });
const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
const DAY = 86_400_000;

function request(over: Partial<OrganisationCertificateRequest>, notBefore = new Date('2026-06-01T00:00:00Z'), days = 90): OrganisationCertificateRequest {
  return { subject: { organization: 'fleetpki', commonName: 'fleetpki etcd a' }, purpose: 'internal-server', issuerSubjectDer: caTbs.subjectDer, issuerKeyId: caTbs.keyId, serial: Buffer.from('2101020304050607ff', 'hex'), notBefore, notAfter: new Date(notBefore.getTime() + days * DAY), publicKeySpki: leafKey, names: ['127.0.0.1', 'etcd.example'], ...over };
}

function certificate(req: OrganisationCertificateRequest): X509Certificate {
  const tbs = buildOrganisationTbs(req);
  return new X509Certificate(assembleSignedCertificate(tbs.der, sign('sha256', tbs.der, ca.privateKey)));
}

const lint = (req: OrganisationCertificateRequest) => lintOrganisationProblems({ ...buildOrganisationTbs(req), request: req }).map((p) => p.lint);

describe('internal TLS certificates', () => {
  it('every part has a profile; servers serve, etcd and its peers are also clients, the etcd client is a client only', () => {
    assert.deepEqual(Object.keys(INTERNAL_TLS_PROFILES).sort(), [...TLS_PARTS].sort());
    assert.deepEqual(Object.entries(INTERNAL_TLS_PROFILES).filter(([, p]) => p.clientAuthToo).map(([part]) => part).sort(), ['etcd', 'etcdPeer']);
    assert.deepEqual(Object.entries(INTERNAL_TLS_PROFILES).filter(([, p]) => p.purpose === 'internal-client').map(([part]) => part), ['etcdClient']);
  });

  it('carries the extended key usages of its profile, and SANs only for servers (lint)', () => {
    const both = certificate(request({ clientAuthToo: true }));
    assert.deepEqual(both.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.match(both.subjectAltName ?? '', /IP Address:127\.0\.0\.1, DNS:etcd\.example/);
    assert.deepEqual(certificate(request({})).keyUsage, ['1.3.6.1.5.5.7.3.1']);
    const { names: _names, ...withCn } = request({ purpose: 'internal-client' });
    const clientRequest = { ...withCn, subject: { organization: 'fleetpki', organizationalUnit: 'internal tls etcdClient a' } };
    const client = certificate(clientRequest);
    assert.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(client.subject, 'O=fleetpki\nOU=internal tls etcdClient a', "etcd's JSON gateway (Patroni's) refuses a client certificate with a CN");
    assert.deepEqual(lint({ ...clientRequest, names: ['127.0.0.1'] }), ['san_purpose']);
    assert.deepEqual(lint(withCn), ['subject_cn'], 'an internal client certificate with a CN is refused');
    assert.deepEqual(lint({ ...request({}), subject: { organization: 'fleetpki' } }), ['subject_cn'], 'a server certificate keeps its CN');
    assert.deepEqual(lint({ ...clientRequest, subject: {} }), ['subject_cn'], 'an internal client certificate without a CN still names its organisation or unit');
    assert.deepEqual(lint({ ...clientRequest, clientAuthToo: true }), ['eku_client_too']);
    assert.deepEqual(lint(request({ names: [] })), ['san_required']);
    assert.deepEqual(lint(request({ purpose: 'server', clientAuthToo: true })), ['eku_client_too'], "a person's or the API's server certificate keeps one purpose");
  });

  it('checks parts and names with stable codes', () => {
    assert.throws(() => internalTlsPart('mysql'), { code: 'INTERNAL_TLS_PART_UNKNOWN' });
    assert.throws(() => internalTlsNames('postgres', ['', ' ']), { code: 'INTERNAL_TLS_NAMES_REQUIRED' });
    assert.throws(() => internalTlsNames('etcdClient', ['a.example']), { code: 'INTERNAL_TLS_NAMES_UNEXPECTED' });
    assert.throws(() => internalTlsNames('postgres', ['*.example.net']), { code: 'INTERNAL_TLS_NAME_INVALID' });
    assert.throws(() => internalTlsNames('postgres', ['db_1.example']), { code: 'INTERNAL_TLS_NAME_INVALID' });
    assert.deepEqual(internalTlsNames('postgres', [' db.example ', '10.0.1.10', 'db.example', '::1']), ['db.example', '10.0.1.10', '::1']);
    assert.deepEqual(internalTlsNames('etcdClient', ['']), []);
  });

  it("rotate takes the host's current certificates that are due or revoked, with their names and validity, and nothing superseded", () => {
    const now = new Date('2026-08-20T00:00:00Z');
    const record = (part: string, host: string, notBefore: string, days: number, extra: Partial<InternalTlsRecord> = {}): InternalTlsRecord => {
      const x509 = certificate(request({ names: ['10.0.1.10'] }, new Date(notBefore), days));
      return { serial: Buffer.from(x509.serialNumber, 'hex'), purpose: 'internal-server', part, host, certificate: x509.raw, notAfter: new Date(x509.validTo), createdAt: new Date(notBefore), revokedAt: null, supersededAt: null, supersededBy: null, ...extra };
    };
    const listed = [
      record('postgres', 'a', '2026-06-01T00:00:00Z', 90), // ends 2026-08-30: 10 days left
      record('redis', 'a', '2026-08-01T00:00:00Z', 365),
      record('status', 'a', '2026-08-01T00:00:00Z', 365, { revokedAt: new Date() }),
      record('etcd', 'a', '2026-06-01T00:00:00Z', 80, { supersededAt: new Date(), supersededBy: Buffer.from('01', 'hex') }),
      record('postgres', 'b', '2026-06-01T00:00:00Z', 90),
    ].map((r) => describeInternalTls(r, 30, now));
    assert.equal(listed[0]!.daysLeft, 10);
    assert.deepEqual(rotationPlan(listed, 'a').map((p) => [p.part, p.days, p.names]), [['postgres', 90, ['10.0.1.10']], ['status', 365, ['10.0.1.10']]]);
    assert.deepEqual(rotationPlan(listed, 'a', 'redis'), []);
    assert.deepEqual(rotationPlan(listed, 'b').map((p) => p.part), ['postgres']);
  });
});
