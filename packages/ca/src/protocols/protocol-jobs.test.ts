import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cmpConfirmExpiry, estSupersededRevoker } from './protocol-jobs.js';

/** The protocols' reconcilers as DaemonJobs, over in-memory ports: what one pass asks and writes. */
describe('protocol DaemonJobs', () => {
  it('cmpConfirmExpiry: one pass marks what waited longer than the confirm wait, as the actor given; told only when something expired', async () => {
    const asked: [number, string][] = [];
    let waiting = 3;
    const told: number[] = [];
    const job = cmpConfirmExpiry({
      store: {
        async expireWaitingTransactions(olderThanSeconds, actor) {
          asked.push([olderThanSeconds, actor]);
          const n = waiting;
          waiting = 0;
          return n;
        },
      },
      confirmWaitSeconds: 120,
      actor: 'issuer-api:a',
      everyMs: 5_000,
      onExpired: (n) => told.push(n),
    });
    assert.equal(job.name, 'cmp-confirm-expiry');
    assert.equal(job.everyMs, 5_000);
    assert.equal(await job.pass(), false, 'one UPDATE takes them all: no backlog');
    assert.equal(await job.pass(), false);
    assert.deepEqual(asked, [[120, 'issuer-api:a'], [120, 'issuer-api:a']]);
    assert.deepEqual(told, [3]);
  });

  it('estSupersededRevoker: revokes a page of superseded certificates, reason superseded (4), as the actor given; a full page is a backlog', async () => {
    const serial = (i: number) => Buffer.from([0x7a, i >> 8, i & 0xff]);
    let superseded = Array.from({ length: 1_500 }, (_, i) => serial(i));
    const revoked: { serials: Buffer[]; reason: number; requestedBy: string; manufacturerId: string | null }[] = [];
    const told: number[] = [];
    const job = estSupersededRevoker({
      store: { supersededUnrevoked: async (graceSeconds, limit) => (assert.equal(graceSeconds, 86_400), superseded.slice(0, limit)) },
      revocations: {
        async revoke(request) {
          assert.equal(request.target.kind, 'serials');
          const serials = request.target.kind === 'serials' ? [...request.target.serials] : [];
          revoked.push({ serials, reason: request.reason, requestedBy: request.requestedBy, manufacturerId: request.manufacturerId });
          superseded = superseded.filter((s) => !serials.some((r) => r.equals(s)));
          return { revoked: serials.length, alreadyRevoked: 0, notFound: [], shards: [] };
        },
      },
      graceSeconds: 86_400,
      actor: 'issuer-api:b',
      everyMs: 1_000,
      onRevoked: (n) => told.push(n),
    });
    assert.equal(job.name, 'est-superseded');
    assert.equal(await job.pass(), true, 'a full page: more wait');
    assert.equal(await job.pass(), false);
    assert.equal(await job.pass(), false, 'nothing left: nothing asked of the revocation service');
    assert.deepEqual(revoked.map((r) => [r.serials.length, r.reason, r.requestedBy, r.manufacturerId]), [[1_000, 4, 'issuer-api:b', null], [500, 4, 'issuer-api:b', null]]);
    assert.deepEqual(told, [1_000, 500]);
  });

  it('estSupersededRevoker: a full page of which nothing is revoked (all revoked meanwhile, or none found) is no backlog: passes do not run back to back', async () => {
    const page = Array.from({ length: 1_000 }, (_, i) => Buffer.from([0x7b, i >> 8, i & 0xff]));
    const told: number[] = [];
    let asked = 0;
    const job = estSupersededRevoker({
      store: { supersededUnrevoked: async () => page },
      revocations: {
        async revoke() {
          asked++;
          return { revoked: 0, alreadyRevoked: 0, notFound: page, shards: [] };
        },
      },
      graceSeconds: 60,
      actor: 'daemons:a',
      everyMs: 1_000,
      onRevoked: (n) => told.push(n),
    });
    assert.equal(await job.pass(), false);
    assert.equal(asked, 1);
    assert.deepEqual(told, [], 'nothing revoked: nothing to tell');
  });
});
