import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoleSiteRuntime, StatusSite } from '@fleetpki/ca';
import { loadConfig } from '@fleetpki/core';
import { JOBS, RECONCILERS, STATUS_JOBS, openSiteDaemons, rolesOf, selectJobs } from './site-daemons.js';

/** Stand-ins for what the daemons open, recording what was opened and closed; every site may act. */
function seams() {
  const opened: string[] = [];
  const closed: string[] = [];
  const canAct = async () => true;
  const lease = { state: () => ({ issuing: true }) };
  const query = async () => ({ rows: [], rowCount: 0 });
  return {
    opened,
    closed,
    seams: {
      openStatusSite: async () => {
        opened.push('status');
        // No CA key in this stand-in: the CRL and OCSP jobs are unavailable, the audit sealer runs.
        return { pool: { query }, lease, canAct, ca: undefined, signing: undefined, keyStore: undefined, close: async () => void closed.push('status') } as unknown as StatusSite;
      },
      openRoleSite: async (role: 'issuer' | 'worker') => {
        opened.push(role);
        return { pool: { query }, lease, guard: { canAct }, close: async () => void closed.push(role) } as unknown as RoleSiteRuntime;
      },
      openQueue: () => {
        opened.push('queue');
        return { enqueue: async () => undefined, close: async () => void closed.push('queue') };
      },
      // The only instance: it leads every job.
      openLeadership: async () => {
        opened.push('leadership');
        return { holds: async () => true, release: async () => undefined, close: async () => void closed.push('leadership') };
      },
    },
  };
}

describe('the daemons registry', () => {
  it('names every job of a site once, in kebab-case, the reconcilers beside the status jobs', () => {
    assert.deepEqual(Object.keys(JOBS), ['crl-publisher', 'ocsp-preproducer', 'ocsp-refresher', 'audit-sealer', 'batch-outbox', 'online-intents', 'cmp-confirm-expiry', 'est-superseded']);
    for (const name of Object.keys(JOBS)) assert.match(name, /^[a-z]+(-[a-z]+)*$/);
    assert.deepEqual(STATUS_JOBS, ['crl-publisher', 'ocsp-preproducer', 'ocsp-refresher', 'audit-sealer']);
    assert.deepEqual(RECONCILERS, ['batch-outbox', 'online-intents', 'cmp-confirm-expiry', 'est-superseded']);
  });

  it('each job works as the database role whose grants it uses', () => {
    assert.deepEqual(
      Object.fromEntries(Object.entries(JOBS).map(([name, spec]) => [name, spec.role])),
      { 'crl-publisher': 'status', 'ocsp-preproducer': 'status', 'ocsp-refresher': 'status', 'audit-sealer': 'status', 'batch-outbox': 'worker', 'online-intents': 'issuer', 'cmp-confirm-expiry': 'issuer', 'est-superseded': 'issuer' },
    );
    assert.deepEqual(rolesOf(['crl-publisher']), ['status']);
    assert.deepEqual(rolesOf(['est-superseded', 'batch-outbox', 'online-intents']), ['worker', 'issuer']);
    assert.deepEqual(rolesOf(Object.keys(JOBS)), ['status', 'worker', 'issuer']);
  });

  it('--only selects by name and refuses a name that is no job', () => {
    assert.equal(selectJobs(undefined), undefined);
    assert.deepEqual(selectJobs('crl-publisher, audit-sealer'), ['crl-publisher', 'audit-sealer']);
    assert.deepEqual(selectJobs('batch-outbox,online-intents,cmp-confirm-expiry,est-superseded'), RECONCILERS);
    assert.throws(() => selectJobs('crl-publisher,ocsp-responder'), { code: 'DAEMON_UNKNOWN' });
    assert.throws(() => selectJobs('batch-outbox-reconciler'), { code: 'DAEMON_UNKNOWN' });
  });
});

describe('openSiteDaemons', () => {
  const config = loadConfig({ FLEETPKI_SITE: 'a' });

  it('--only crl-publisher opens the status site alone: no issuer or worker pool, no queue', async () => {
    const { opened, closed, seams: s } = seams();
    const daemons = await openSiteDaemons(config, { only: ['crl-publisher'], logger: false, seams: s });
    assert.deepEqual(opened, ['status', 'leadership']);
    assert.deepEqual(daemons.roles, ['status']);
    assert.deepEqual(daemons.unavailable, ['crl-publisher'], 'no CA key in the stand-in');
    await daemons.close();
    assert.deepEqual(closed, ['leadership', 'status']);
  });

  it('status jobs without the CA key: blind once the site may act (main.ts exits to be restarted, /healthz 503), not while it is a standby', async () => {
    let acts = false;
    const { seams: s } = seams();
    const standbyFirst = { ...s, openStatusSite: async () => ({ ...(await s.openStatusSite()), canAct: async () => acts }) as StatusSite };
    const daemons = await openSiteDaemons(config, { only: ['crl-publisher', 'audit-sealer'], logger: false, seams: standbyFirst });
    assert.deepEqual(daemons.unavailable, ['crl-publisher']);
    assert.equal(await daemons.blindWhileActive(), false, 'a standby without the key publishes nothing anyway');
    acts = true;
    assert.equal(await daemons.blindWhileActive(), true, 'the active site would publish no CRL');
    await daemons.close();
    const reconcilersOnly = await openSiteDaemons(config, { only: ['batch-outbox'], logger: false, seams: seams().seams });
    assert.equal(await reconcilersOnly.blindWhileActive(), false, 'no status job selected: no key needed');
    await reconcilersOnly.close();
  });

  it('--only batch-outbox opens the worker role and the queue, not the status site (no HSM)', async () => {
    const { opened, closed, seams: s } = seams();
    const daemons = await openSiteDaemons(config, { only: ['batch-outbox'], logger: false, seams: s });
    assert.deepEqual(opened, ['worker', 'leadership', 'queue']);
    assert.equal(daemons.site, undefined);
    assert.deepEqual(daemons.daemons.map((d) => d.stats.name), ['batch-outbox']);
    await daemons.runOnce();
    assert.equal(daemons.stats()[0]!.passes, 1);
    await daemons.close();
    assert.deepEqual(closed, ['queue', 'leadership', 'worker']);
  });

  it('the issuer reconcilers share one issuer pool; est-superseded is off when the configuration says never', async () => {
    const { opened, seams: s } = seams();
    const never = { ...config, est: { revokeSupersededAfterSeconds: null } };
    const daemons = await openSiteDaemons(never, { only: ['online-intents', 'cmp-confirm-expiry', 'est-superseded'], logger: false, seams: s });
    assert.deepEqual(opened, ['issuer', 'leadership']);
    assert.deepEqual(daemons.daemons.map((d) => d.stats.name), ['online-intents', 'cmp-confirm-expiry']);
    assert.deepEqual(daemons.unavailable, ['est-superseded']);
    await daemons.close();
  });

  it('every job opens each role once; an unknown name is DAEMON_UNKNOWN before anything is opened', async () => {
    const { opened, seams: s } = seams();
    const daemons = await openSiteDaemons(config, { logger: false, seams: s });
    assert.deepEqual(opened, ['status', 'worker', 'issuer', 'leadership', 'queue']);
    assert.deepEqual(Object.keys(daemons.leases()), ['status', 'worker', 'issuer']);
    await daemons.close();
    const none = seams();
    await assert.rejects(openSiteDaemons(config, { only: ['crl-publisher', 'reconciler'], logger: false, seams: none.seams }), { code: 'DAEMON_UNKNOWN' });
    assert.deepEqual(none.opened, []);
  });

  it('a job this process does not lead is skipped, counted as not leader; the one it leads runs', async () => {
    const { seams: s } = seams();
    const asked: string[] = [];
    const followerOfOne = { ...s, openLeadership: async () => ({ holds: async (job: string) => (asked.push(job), job !== 'online-intents'), release: async () => undefined, close: async () => undefined }) };
    const daemons = await openSiteDaemons(config, { only: ['online-intents', 'cmp-confirm-expiry'], logger: false, seams: followerOfOne });
    await daemons.runOnce();
    const stats = Object.fromEntries(daemons.stats().map((d) => [d.name, d]));
    assert.deepEqual([stats['online-intents']!.passes, stats['online-intents']!.skippedNotLeader], [0, 1]);
    // The one it leads ran its pass (which the stand-in pool may fail: run, not skipped, is what counts here).
    assert.deepEqual([stats['cmp-confirm-expiry']!.passes + stats['cmp-confirm-expiry']!.failures, stats['cmp-confirm-expiry']!.skippedNotLeader], [1, 0]);
    assert.deepEqual(asked, ['online-intents', 'cmp-confirm-expiry']);
    await daemons.close();
  });

  it('an instance whose site may not act asks for no lock and gives up the one it held', async () => {
    const { seams: s } = seams();
    const calls: string[] = [];
    let acts = true;
    const leadership = { holds: async (job: string) => (calls.push(`holds ${job}`), true), release: async (job: string) => void calls.push(`release ${job}`), close: async () => undefined };
    const standby = { ...s, openRoleSite: async (role: 'issuer' | 'worker') => ({ ...(await s.openRoleSite(role)), guard: { canAct: async () => acts } }) as RoleSiteRuntime, openLeadership: async () => leadership };
    const daemons = await openSiteDaemons(config, { only: ['online-intents'], logger: false, seams: standby });
    await daemons.runOnce();
    acts = false;
    await daemons.runOnce();
    assert.deepEqual(calls, ['holds online-intents', 'release online-intents']);
    assert.equal(daemons.stats()[0]!.skippedNotLeader, 1);
    await daemons.close();
  });
});
