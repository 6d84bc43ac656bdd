import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { SiteLease, type LeaseObservation } from './site-lease.js';

/**
 * Review of issue 33 §4 (branch review-1). The standby vouches "good" once its replay has reached the
 * vouch floor, the primary's WAL position that the leader's agent writes to etcd. The agent writes it
 * only when the position moved, and gives up silently when it cannot read it (site-agent.ts
 * publishVouchFloor: `.catch(() => undefined)`); SiteLease never looks at the floor's `at`. So a floor
 * the leader stopped publishing an hour ago (its agent stuck in a tick, its connection failing) still
 * lets a standby whose replay then stalled vouch, while the primary shows revocations it lacks: the
 * README's "a stalled standby stops vouching within a tick and a lease read" holds only while the
 * leader publishes.
 */
const T0 = Date.parse('2026-12-06T12:00:00Z');

describe('review: the vouch floor is only as fresh as its last write', () => {
  const config = loadConfig({ FLEETPKI_STATE_DIR: mkdtempSync(join(tmpdir(), 'fleetpki-review-floor-')), FLEETPKI_SITE_LEASE_MS: '5000' });
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: T0 }));
  afterEach(() => mock.timers.reset());

  const standbyWithFloorFrom = (at: string): LeaseObservation => ({
    state: {
      leader: { site: 'a', lease: '1f', ttlSeconds: 5 },
      candidates: [{ site: 'a', lease: '1f' }],
      unprotected: undefined,
      vouchFloor: { site: 'a', lsn: '0/5000000', at },
      handedOver: [],
      switchover: undefined,
      writesBlocked: {},
    },
    inRecovery: true,
    epoch: 3,
    activeHere: false,
    streaming: true,
    replayLsn: '0/5000000',
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

  it('a floor published just now lets a caught-up standby vouch (the rule as built)', async () => {
    assert.equal((await judge(standbyWithFloorFrom(new Date(T0 - 1_000).toISOString()))).vouching, true);
  });

  it('a floor the leader last wrote an hour ago does not', async () => {
    const view = await judge(standbyWithFloorFrom(new Date(T0 - 3_600_000).toISOString()));
    assert.equal(view.vouching, false, `vouching on a floor written an hour ago: ${view.reason}`);
  });
});
