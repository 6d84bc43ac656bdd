import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FleetError, parseEui64 } from '@fleetpki/core';
import type { CaRecord, EnrolmentRequestRecord } from '@fleetpki/store';
import { DEFAULT_PROFILE_ID, parseDevicePublicKey } from '@fleetpki/x509';
import { generateKeyPairSync } from 'node:crypto';
import { EnrolmentService, type EnrolmentGuards, type EnrolmentRequest } from './enrolment.js';
import type { IssuingCa } from './issuing-ca.js';
import type { EnrolmentStore } from './store.js';

/**
 * EnrolmentService's own guards, whichever protocol calls: the site must be writable and the CA active
 * before anything is recorded (the routes asked this themselves before). In-memory store; a store call
 * reached is recorded, so a refusal is seen to come before it.
 */
const ca = { record: { id: 'fpd1' } as CaRecord } as IssuingCa;
const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
const request: EnrolmentRequest = {
  eui64: parseEui64('00-11-22-33-44-55-66-77'),
  keyRole: 'digitalSignature',
  profileId: DEFAULT_PROFILE_ID,
  deviceType: 'smart-meter',
  publicKey: parseDevicePublicKey(spki.toString('base64')),
  manufacturerId: 'acme',
  actor: 'test',
};

/** Every call is noted; a held request stays pending, so an enrolment that passes the guards stops there, before any signing. */
function recordingStore(calls: string[]): EnrolmentStore {
  const refuse = (name: string) => () => {
    calls.push(name);
    return Promise.reject(new Error(`${name}: not in this test`));
  };
  return {
    recordIntents: refuse('recordIntents'),
    storeCertificates: refuse('storeCertificates'),
    explainRefusedIntent: refuse('explainRefusedIntent'),
    findActiveEnrolment: refuse('findActiveEnrolment'),
    retireIntent: refuse('retireIntent'),
    staleOnlineIntents: refuse('staleOnlineIntents'),
    findPresentedCertificate: refuse('findPresentedCertificate'),
    holdRequest: async (_site, r) => {
      calls.push('holdRequest');
      return { id: 'r1', label: r.label, manufacturerId: r.manufacturerId, eui64: r.eui64, protocol: r.protocol, requestedBy: r.requestedBy, status: 'pending', decidedBy: null, decidedAt: null, createdAt: new Date() } satisfies EnrolmentRequestRecord;
    },
  };
}

const standby = () => Promise.reject(new FleetError('SITE_STANDBY', 'site b is a standby and accepts no writes', { httpStatus: 503 }));
const revoked = (caId: string) => Promise.reject(new FleetError('CA_NOT_ACTIVE', `CA ${caId} is revoked; it issues no more certificates`, { httpStatus: 409 }));
const fine = async () => undefined;

function service(guards: EnrolmentGuards, calls: string[]): EnrolmentService {
  return new EnrolmentService(ca, recordingStore(calls), 'a', 0x0a, guards, { holds: { labels: [{ label: 'smart-meter-signing', profileId: DEFAULT_PROFILE_ID, keyRole: 'digitalSignature' }], retryAfterSeconds: 30 } });
}

describe('EnrolmentService guards', () => {
  it('a standby site refuses before anything else: SITE_STANDBY, no store call, the caller\'s work not run', async () => {
    const calls: string[] = [];
    let ran = false;
    await assert.rejects(
      service({ site: { assertWritable: standby }, ca: { assertActive: fine } }, calls).enrol(request, async () => {
        ran = true;
      }),
      { code: 'SITE_STANDBY' },
    );
    assert.deepEqual(calls, []);
    assert.equal(ran, false);
  });

  it('a revoked CA refuses with CA_NOT_ACTIVE, naming the CA, after the site check', async () => {
    const calls: string[] = [];
    const asked: string[] = [];
    const guards = {
      site: { assertWritable: async () => void asked.push('site') },
      ca: {
        assertActive: (caId: string) => {
          asked.push(`ca ${caId}`);
          return revoked(caId);
        },
      },
    };
    await assert.rejects(service(guards, calls).enrol(request), { code: 'CA_NOT_ACTIVE', message: 'CA fpd1 is revoked; it issues no more certificates' });
    assert.deepEqual(asked, ['site', 'ca fpd1']);
    assert.deepEqual(calls, []);
  });

  it('re-enrolment is guarded the same way', async () => {
    const calls: string[] = [];
    const { manufacturerId: _, ...renewal } = request;
    await assert.rejects(service({ site: { assertWritable: fine }, ca: { assertActive: revoked } }, calls).renew(renewal, { serial: Buffer.from([1]), der: Buffer.from([0x30]) }), { code: 'CA_NOT_ACTIVE' });
    assert.deepEqual(calls, []);
  });

  it('with both guards passing: the caller\'s work runs, then the enrolment goes on (here to its hold)', async () => {
    const calls: string[] = [];
    await assert.rejects(
      service({ site: { assertWritable: fine }, ca: { assertActive: fine } }, calls).enrol(request, async () => {
        calls.push('before');
      }),
      { code: 'ENROLMENT_APPROVAL_PENDING' },
    );
    assert.deepEqual(calls, ['before', 'holdRequest']);
  });

  it("the caller's work failing stops the enrolment before anything is recorded", async () => {
    const calls: string[] = [];
    const failing = () => Promise.reject(new FleetError('HYBRID_KEYS_OFF', 'profile delivers no device keys', { httpStatus: 400 }));
    await assert.rejects(service({ site: { assertWritable: fine }, ca: { assertActive: fine } }, calls).enrol(request, failing), { code: 'HYBRID_KEYS_OFF' });
    assert.deepEqual(calls, []);
  });
});
