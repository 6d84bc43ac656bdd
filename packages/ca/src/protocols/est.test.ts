import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FleetError, isFleetError } from '@fleetpki/core';
import { readPkiMessage } from '@fleetpki/cmp';
import type { EnrolmentRequestRecord } from '@fleetpki/store';
import { inlinePossessionVerifier } from '@fleetpki/x509';
import type { Principal } from '../access/api-tokens.js';
import type { EnrolmentRequest, IssuedCertificate } from '../issuance/enrolment.js';
import { enrolmentLabel } from '../issuance/enrolment-labels.js';
import { EstEnrolment } from './est-enrolment.js';
import { EnrolmentRequestDecisions } from './est-requests.js';
import type { EnrolmentRequestStore } from './store.js';

/**
 * EST's RA logic (RFC 7030) and the officers' decisions on held requests, with in-memory ports. The
 * wire with strongSwan's `pki` and curl is test/est.test.ts.
 */
/** A P-256 CSR naming device 0011223344556677 (packages/cmp fixtures: openssl's p10cr). */
const csr = (() => {
  const body = readPkiMessage(readFileSync(new URL('../../../cmp/src/fixtures/p10cr.der', import.meta.url))).body;
  assert.equal(body.type, 'p10cr');
  return body.csr;
})();
const factory = { kind: 'token', tokenId: 't1', name: 'line-1', role: 'factory', manufacturerId: 'acme' } as unknown as Principal;
const issued: IssuedCertificate = { serial: Buffer.from('7a01', 'hex'), der: Buffer.from('30820000', 'hex'), notBefore: new Date(), notAfter: new Date(), crlShard: 0, reused: false };
const label = enrolmentLabel(undefined);

function est(options: { enrol?: () => Promise<IssuedCertificate>; writable?: () => Promise<void> } = {}) {
  const calls: { how: 'enrol' | 'renew'; request: Omit<EnrolmentRequest, 'manufacturerId'> & { manufacturerId?: string }; presented?: { serial: Buffer; der: Buffer } }[] = [];
  const service = new EstEnrolment({
    enrolment: {
      enrol: async (request) => (calls.push({ how: 'enrol', request }), options.enrol ? options.enrol() : issued),
      renew: async (request, presented) => (calls.push({ how: 'renew', request, presented }), issued),
    },
    guard: { assertWritable: options.writable ?? (async () => undefined) },
    caGuard: { assertActive: async () => undefined },
    caId: 'fpd1',
    possession: inlinePossessionVerifier,
  });
  return { service, calls };
}

describe('EstEnrolment', () => {
  it("simpleenroll: the factory's manufacturer, over est, the label's profile and role; the certificate", async () => {
    const { service, calls } = est();
    const outcome = await service.enrol({ csr, label, principal: factory });
    assert.equal(outcome.kind, 'issued');
    assert.equal(outcome.kind === 'issued' && outcome.certificate, issued);
    assert.equal(outcome.kind === 'issued' && outcome.profileId, label.profileId);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.how, 'enrol');
    assert.equal(calls[0]!.request.manufacturerId, 'acme');
    assert.equal(calls[0]!.request.protocol, 'est');
    assert.equal(calls[0]!.request.keyRole, label.keyRole);
    assert.equal(String(calls[0]!.request.eui64), '0011223344556677', "the CSR's device");
  });

  it('simplereenroll: renewed with the certificate presented, as the device', async () => {
    const { service, calls } = est();
    const presented = { serial: Buffer.from('01', 'hex'), der: Buffer.from('3000', 'hex') };
    await service.enrol({ csr, label, device: presented });
    assert.equal(calls[0]!.how, 'renew');
    assert.equal(calls[0]!.presented, presented);
    assert.match(calls[0]!.request.actor, /^device:/);
  });

  it("a held label: come back later (EST_APPROVAL_PENDING, the enrolment's Retry-After); another enrolment in flight: its own error, 1 s", async () => {
    const held = await est({ enrol: () => Promise.reject(new FleetError('ENROLMENT_APPROVAL_PENDING', 'waiting for an administrator', { httpStatus: 202, details: { request: 'r1', retryAfterSeconds: 30 } })) }).service.enrol({ csr, label, principal: factory });
    assert.deepEqual(held, { kind: 'later', retryAfterSeconds: '30', body: { code: 'EST_APPROVAL_PENDING', message: 'waiting for an administrator', details: { request: 'r1', retryAfterSeconds: 30 } } });
    const pending = await est({ enrol: () => Promise.reject(new FleetError('CERTIFICATE_PENDING', 'in flight', { httpStatus: 409 })) }).service.enrol({ csr, label, principal: factory });
    assert.deepEqual(pending, { kind: 'later', retryAfterSeconds: '1', body: { code: 'CERTIFICATE_PENDING', message: 'in flight' } });
  });

  it('a refused request keeps its EST code (EST_REQUEST_REFUSED, 403); other errors pass unchanged', async () => {
    await assert.rejects(est({ enrol: () => Promise.reject(new FleetError('ENROLMENT_REQUEST_REFUSED', 'refused by admin', { httpStatus: 403 })) }).service.enrol({ csr, label, principal: factory }), (err) => isFleetError(err, 'EST_REQUEST_REFUSED') && err.httpStatus === 403);
    await assert.rejects(est({ enrol: () => Promise.reject(new FleetError('EUI64_NOT_AVAILABLE', 'not yours', { httpStatus: 403 })) }).service.enrol({ csr, label, principal: factory }), (err) => isFleetError(err, 'EUI64_NOT_AVAILABLE'));
  });

  it('a site that cannot write: refused before enrolment is asked; a CSR that is not one: refused before the guard', async () => {
    const standby = est({ writable: () => Promise.reject(new FleetError('SITE_STANDBY', 'standby', { httpStatus: 503 })) });
    await assert.rejects(standby.service.enrol({ csr, label, principal: factory }), (err) => isFleetError(err, 'SITE_STANDBY'));
    assert.equal(standby.calls.length, 0);
    await assert.rejects(standby.service.enrol({ csr: Buffer.from('3003020100', 'hex'), label, principal: factory }), (err) => isFleetError(err) && err.code !== 'SITE_STANDBY');
  });
});

function memoryRequests(): EnrolmentRequestStore & { rows: Map<string, EnrolmentRequestRecord> } {
  const rows = new Map<string, EnrolmentRequestRecord>();
  return {
    rows,
    getRequest: async (id) => rows.get(id),
    listRequests: async (status) => [...rows.values()].filter((r) => r.status === status),
    async decideRequest(id, decision, decidedBy) {
      const r = rows.get(id);
      if (!r || r.status !== 'pending') return false;
      rows.set(id, { ...r, status: decision, decidedBy, decidedAt: new Date() });
      return true;
    },
  };
}

describe('EnrolmentRequestDecisions', () => {
  const id = '0b6f3c1e-2f3a-4b5c-8d9e-0123456789ab';
  const pending: EnrolmentRequestRecord = { id, label: 'compact-kex', manufacturerId: 'acme', eui64: Buffer.alloc(8, 1), protocol: 'est', requestedBy: 'factory:acme', status: 'pending', decidedBy: null, decidedAt: null, createdAt: new Date() };

  it('approves a pending request once, as the officer; the second decision is EST_REQUEST_DECIDED (409)', async () => {
    const store = memoryRequests();
    store.rows.set(id, pending);
    const decisions = new EnrolmentRequestDecisions(store, { assertWritable: async () => undefined });
    assert.deepEqual((await decisions.list('pending')).map((r) => r.id), [id]);
    const decided = await decisions.decide(id, 'approved', 'person:alice');
    assert.equal(decided.status, 'approved');
    assert.equal(decided.decidedBy, 'person:alice');
    await assert.rejects(decisions.decide(id, 'refused', 'person:bob'), (err) => isFleetError(err, 'EST_REQUEST_DECIDED') && err.httpStatus === 409 && /already approved/.test(err.message));
  });

  it('an unknown or malformed id is EST_REQUEST_NOT_FOUND (404); a site that cannot write decides nothing', async () => {
    const store = memoryRequests();
    store.rows.set(id, pending);
    const decisions = new EnrolmentRequestDecisions(store, { assertWritable: async () => undefined });
    await assert.rejects(decisions.decide('not-a-uuid', 'approved', 'person:alice'), (err) => isFleetError(err, 'EST_REQUEST_NOT_FOUND') && err.httpStatus === 404);
    await assert.rejects(decisions.decide('1b6f3c1e-2f3a-4b5c-8d9e-0123456789ab', 'approved', 'person:alice'), (err) => isFleetError(err, 'EST_REQUEST_NOT_FOUND'));
    const standby = new EnrolmentRequestDecisions(store, { assertWritable: () => Promise.reject(new FleetError('SITE_STANDBY', 'standby', { httpStatus: 503 })) });
    await assert.rejects(standby.decide(id, 'approved', 'person:alice'), (err) => isFleetError(err, 'SITE_STANDBY'));
    assert.equal(store.rows.get(id)!.status, 'pending');
  });
});
