import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { SiteLease, type LeaseObservation, type SiteObserver } from './site-lease.js';

/**
 * A process acts only until the lease it last read runs out. That deadline is a span of real time from
 * the moment the read was sent; a step of the wall clock (NTP correcting it, an operator setting it)
 * must neither lengthen it nor move it. Here the wall clock (Date) is node:test's mock and the monotonic
 * clock a counter the test moves, and etcd's answers come from a stand-in observer.
 */
const T0 = Date.parse('2026-12-06T12:00:00Z');
const HOUR = 3_600_000;

const leading: LeaseObservation = {
  state: { leader: { site: 'a', lease: '1f', ttlSeconds: 5 }, candidates: [{ site: 'a', lease: '1f' }], unprotected: undefined, vouchFloor: undefined, handedOver: [], switchover: undefined, writesBlocked: {} },
  inRecovery: false,
  epoch: 3,
  activeHere: true,
  streaming: null,
  detail: '',
};

/** Answers as etcd would while the site leads, then (cut off) never again; `during` runs inside a read. */
class StandInObserver implements SiteObserver {
  cutOff = false;
  during: (() => void) | undefined;
  async observe(): Promise<LeaseObservation> {
    if (this.cutOff) throw new Error('no answer from etcd (cut off from the majority)');
    this.during?.();
    return leading;
  }
  reset(): void {}
  close(): void {}
}

describe('the site lease runs on a monotonic clock', () => {
  let monotonic: number;
  let observer: StandInObserver;
  let lease: SiteLease;
  const config = loadConfig({ FLEETPKI_STATE_DIR: mkdtempSync(join(tmpdir(), 'fleetpki-site-lease-')), FLEETPKI_SITE_LEASE_MS: '5000' });

  beforeEach(async () => {
    mock.timers.enable({ apis: ['Date'], now: T0 });
    monotonic = 1_000_000;
    observer = new StandInObserver();
    lease = new SiteLease(config, 'a', 'postgres://unused', { observer, monotonicNow: () => monotonic });
  });

  afterEach(async () => {
    await lease.close();
    mock.timers.reset();
  });

  /** Time passes: `ms` on the monotonic clock, and the wall clock with it (before any step the test makes). */
  const pass = (ms: number) => {
    monotonic += ms;
    mock.timers.setTime(Date.now() + ms);
  };

  it('a fenced process stops when its lease runs out, even if the wall clock was set back an hour', async () => {
    await lease.start();
    assert.equal(lease.state().issuing, true, lease.state().reason);
    observer.cutOff = true;
    mock.timers.setTime(Date.now() - HOUR);
    pass(4_900);
    assert.equal(lease.state().issuing, true, 'still within the 5 s etcd gave it');
    pass(200);
    const view = lease.state();
    assert.equal(view.issuing, false, 'the wall clock stepped back did not lengthen the lease');
    assert.equal(view.vouching, false);
  });

  it('a wall-clock step while the read is on its way does not move the deadline either', async () => {
    observer.during = () => mock.timers.setTime(Date.now() - HOUR);
    await lease.start();
    observer.cutOff = true;
    pass(5_100);
    assert.equal(lease.state().issuing, false, 'the deadline counts from when the read was sent, on the monotonic clock');
  });

  it('nor does a step forward end a lease early', async () => {
    await lease.start();
    observer.cutOff = true;
    mock.timers.setTime(Date.now() + HOUR);
    pass(4_000);
    assert.equal(lease.state().issuing, true, lease.state().reason);
  });
});

/**
 * Issue 33 §4: a standby vouches for "good" only while it is a streaming synchronous standby that has
 * replayed at least as far as the primary had written (the vouch floor its agent publishes), and not
 * while protection is being restored after running unprotected.
 */
describe("the standby's vouching", () => {
  const config = loadConfig({ FLEETPKI_STATE_DIR: mkdtempSync(join(tmpdir(), 'fleetpki-site-lease-')), FLEETPKI_SITE_LEASE_MS: '5000' });
  const standby = (changes: { replayLsn?: string | null; streaming?: boolean; floor?: string | undefined; floorAt?: string; unprotected?: { since: string; by: string; restoring?: boolean } }): LeaseObservation => ({
    state: {
      ...leading.state,
      unprotected: changes.unprotected,
      vouchFloor: changes.floor === undefined ? undefined : { site: 'a', lsn: changes.floor, at: changes.floorAt ?? new Date().toISOString() },
    },
    inRecovery: true,
    epoch: 3,
    activeHere: false,
    streaming: changes.streaming ?? true,
    replayLsn: changes.replayLsn === undefined ? '0/5000000' : changes.replayLsn,
    detail: 'streaming',
  });
  const judge = async (o: LeaseObservation) => {
    const lease = new SiteLease(config, 'b', 'postgres://unused', { observer: { observe: async () => o, reset() {}, close() {} } });
    try {
      await lease.start();
      return lease.state();
    } finally {
      await lease.close();
    }
  };

  it('vouches once it has replayed as far as the primary had written', async () => {
    assert.equal((await judge(standby({ floor: '0/5000000' }))).vouching, true);
    assert.equal((await judge(standby({ floor: '0/4FFFFFF' }))).vouching, true);
  });

  it('does not vouch while behind the floor (a stalled replay), nor without a floor at all', async () => {
    const behind = await judge(standby({ floor: '1/0', replayLsn: '0/FFFFFFFF' }));
    assert.deepEqual([behind.vouching, /behind the primary/.test(behind.reason)], [false, true], behind.reason);
    assert.equal((await judge(standby({ floor: undefined }))).vouching, false);
  });

  it('does not vouch on a floor nobody has republished for long (the primary\'s agent cannot see its WAL, or is gone)', async () => {
    const stale = await judge(standby({ floor: '0/1', floorAt: new Date(Date.now() - 3_600_000).toISOString() }));
    assert.deepEqual([stale.vouching, /last published/.test(stale.reason)], [false, true], stale.reason);
  });

  it('does not vouch while not streaming, while unprotected, or while protection is being restored', async () => {
    assert.equal((await judge(standby({ floor: '0/1', streaming: false }))).vouching, false);
    assert.equal((await judge(standby({ floor: '0/1', unprotected: { since: 'x', by: 'y' } }))).vouching, false);
    const restoring = await judge(standby({ floor: '0/1', unprotected: { since: 'x', by: 'y', restoring: true } }));
    assert.deepEqual([restoring.vouching, /catching up/.test(restoring.reason)], [false, true], restoring.reason);
  });
});
