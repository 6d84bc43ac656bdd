import assert from 'node:assert/strict';
import { X509Certificate, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AuditEvent, CaRecord, OrganisationCertificateRecord, SiteStateRecord } from '@fleetpki/store';
import { assembleSignedCertificate, buildCaTbs, buildOrganisationTbs, readTlv } from '@fleetpki/x509';
import { CA_IDS } from '../ca-ids.js';
import { issueOrganisationCertificate } from './organisation-issuer.js';
import type { OrganisationIssuerStore } from './store.js';

/**
 * Organisation certificates go the device certificates' way: prepared, linted, recorded (the intent
 * commits before the HSM signs), signed, stored with its audit row. In-memory store, software CA key.
 */
const caKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caSpki = caKeys.publicKey.export({ format: 'der', type: 'spki' });
const caTbs = buildCaTbs({ subject: { organization: 'fleetpki', commonName: 'fleetpki organisation CA' }, serial: Buffer.from('0b0102030405060708', 'hex'), notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z'), publicKeySpki: caSpki, pathLength: 0 });
const caCert = assembleSignedCertificate(caTbs.der, sign('sha256', caTbs.der, caKeys.privateKey));
const caRecord: CaRecord = { id: CA_IDS.organisation, kind: 'organisation', parentId: null, subjectDn: 'CN=fleetpki organisation CA', keyUri: `pkcs11:token=software;object=${CA_IDS.organisation}`, keyId: caTbs.keyId, certificate: caCert, notAfter: new Date('2050-01-01T00:00:00Z'), status: 'active' };

/** Counts signatures, so a test sees whether the intent was committed before the HSM signed. */
function softwareKeyStore(options: { corrupt?: boolean } = {}) {
  const keyStore = {
    signatures: 0,
    labels: [] as string[],
    async getSigner(label: string) {
      keyStore.labels.push(label);
      return {
        algorithm: 'ecdsa-p256-sha256' as const,
        publicKeySpki: caSpki,
        async sign(data: Uint8Array) {
          keyStore.signatures++;
          const signature = sign('sha256', data, caKeys.privateKey);
          return options.corrupt ? sign('sha256', Buffer.from('something else'), caKeys.privateKey) : signature;
        },
      };
    },
  };
  return keyStore;
}

class MemoryOrganisationIssuer implements OrganisationIssuerStore {
  intents: { serial: Buffer; purpose: string; tbsSha256: Buffer; signaturesBefore: number }[] = [];
  stored: (Omit<OrganisationCertificateRecord, 'revokedAt' | 'personName'> & { audit: AuditEvent })[] = [];
  constructor(private readonly keyStore: { signatures: number }) {}
  async listCas() {
    return [caRecord];
  }
  async readSiteStates(): Promise<SiteStateRecord[]> {
    return [{ site: 'a', role: 'active', epoch: 1, serialPrefix: 0x21 }];
  }
  async recordOrganisationIntent(intent: { serial: Buffer; purpose: OrganisationCertificateRecord['purpose']; tbsSha256: Buffer }) {
    this.intents.push({ ...intent, signaturesBefore: this.keyStore.signatures });
  }
  async storeOrganisationCertificate(certificate: Omit<OrganisationCertificateRecord, 'revokedAt' | 'personName'>, audit: AuditEvent) {
    this.stored.push({ ...certificate, audit });
  }
}

/** The TBS of a DER certificate: the first element of its outer SEQUENCE, tag and length included. */
function tbsOf(der: Buffer): Buffer {
  const outer = readTlv(der, 0);
  const tbs = readTlv(der, outer.contentStart);
  return der.subarray(tbs.start, tbs.end);
}

const serverKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
const order = { purpose: 'server' as const, subject: { organization: 'fleetpki', organizationalUnit: 'server', commonName: 'fleetpki issuer api site a' }, publicKeySpki: serverKey, days: 30, names: ['127.0.0.1', 'api.example'], actor: 'person:admin via token:1' };

describe('issueOrganisationCertificate', () => {
  it('records the intent before the HSM signs, then stores exactly the certificate it returns with its audit row', async () => {
    const keyStore = softwareKeyStore();
    const store = new MemoryOrganisationIssuer(keyStore);
    const issued = await issueOrganisationCertificate(store, keyStore, 'a', order);
    assert.equal(keyStore.signatures, 1);
    assert.deepEqual(keyStore.labels, [CA_IDS.organisation]);
    const [intent] = store.intents;
    assert.equal(intent!.signaturesBefore, 0, 'nothing was signed before the intent was recorded');
    assert.ok(intent!.serial.equals(issued.serial));
    assert.ok(intent!.tbsSha256.equals(createHash('sha256').update(tbsOf(issued.der)).digest()), 'the intent commits to the TBS that was signed');
    assert.deepEqual(store.stored[0]!.audit, { site: 'a', actor: order.actor, action: 'org-certificate.issue', subject: issued.serial.toString('hex'), details: { purpose: 'server', subject: 'O=fleetpki, OU=server, CN=fleetpki issuer api site a', role: null } });
    assert.equal(store.stored.length, 1);
    assert.ok(store.stored[0]!.certificate.equals(issued.der));
    assert.equal(store.stored[0]!.subjectDn, 'O=fleetpki, OU=server, CN=fleetpki issuer api site a');
    assert.equal(issued.serial[0], 0x21, "the site's serial prefix");
  });

  it('signs the same certificate as before the lint step: the TBS is buildOrganisationTbs of the order, and it verifies under the CA', async () => {
    const keyStore = softwareKeyStore();
    const issued = await issueOrganisationCertificate(new MemoryOrganisationIssuer(keyStore), keyStore, 'a', order);
    const x509 = new X509Certificate(issued.der);
    assert.ok(x509.verify(new X509Certificate(caCert).publicKey));
    const notBefore = new Date(x509.validFrom);
    const expected = buildOrganisationTbs({ subject: order.subject, purpose: 'server', issuerSubjectDer: caTbs.subjectDer, issuerKeyId: caTbs.keyId, serial: issued.serial, notBefore, notAfter: new Date(notBefore.getTime() + 30 * 86_400_000), publicKeySpki: serverKey, names: order.names });
    assert.ok(tbsOf(issued.der).equals(expected.der));
    assert.ok(issued.keyId.equals(expected.keyId));
  });

  it('refuses a key the lint refuses before anything is recorded or signed', async () => {
    const keyStore = softwareKeyStore();
    const store = new MemoryOrganisationIssuer(keyStore);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'der', type: 'spki' });
    await assert.rejects(issueOrganisationCertificate(store, keyStore, 'a', { ...order, publicKeySpki: p384 }), (err: { code?: string; message?: string }) => err.code === 'LINT_FAILED' && /spki_p256/.test(err.message ?? ''));
    await assert.rejects(issueOrganisationCertificate(store, keyStore, 'a', { ...order, purpose: 'audit' }), (err: { code?: string; message?: string }) => err.code === 'LINT_FAILED' && /san_purpose/.test(err.message ?? ''));
    await assert.rejects(issueOrganisationCertificate(store, keyStore, 'a', { ...order, purpose: 'client' }), { code: 'ORG_CERT_ROLE_INVALID' });
    for (const name of ['root', 'agent-a', 'Operator']) {
      await assert.rejects(issueOrganisationCertificate(store, keyStore, 'a', { ...order, purpose: 'client', role: 'administrator', person: { id: 'p1', createdBy: 'p0' }, subject: { ...order.subject, commonName: name } }), { code: 'ORG_CERT_NAME_RESERVED' }, `a certificate named ${name}`);
    }
    assert.deepEqual([store.intents.length, store.stored.length, keyStore.signatures], [0, 0, 0]);
  });

  it('stores no certificate whose signature does not verify, and logs no issuance (the intent stays, as evidence)', async () => {
    const keyStore = softwareKeyStore({ corrupt: true });
    const store = new MemoryOrganisationIssuer(keyStore);
    await assert.rejects(issueOrganisationCertificate(store, keyStore, 'a', order), { code: 'HSM_SIGNATURE_INVALID' });
    assert.deepEqual([store.intents.length, store.stored.length], [1, 0]);
  });
});
