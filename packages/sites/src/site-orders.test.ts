import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SiteOrderEntry } from '@fleetpki/consensus';
import type { SiteOrderRecord } from '@fleetpki/store';
import { checkRow, ORDER_MAX_AGE_SECONDS } from './site-orders.js';

const entry = (action: SiteOrderEntry['order']['action'], to?: 'a' | 'b'): SiteOrderEntry => ({ id: 'o1', order: { action, database: 'fleetpki', at: '2026-12-06T00:00:00Z', ...(to ? { to } : {}) } });
const row = (over: Partial<SiteOrderRecord> = {}): SiteOrderRecord => ({
  id: 'o1',
  action: 'site.unprotect',
  payload: {},
  people: ['alice', 'bob'],
  credentials: ['token:1', 'token:2'],
  createdAt: new Date(),
  ageSeconds: 3,
  executedAt: null,
  outcome: null,
  ...over,
});

describe('what an agent checks before it carries out a site order', () => {
  it('a fresh, unexecuted row of the same action backs it', () => {
    assert.equal(checkRow(entry('site.unprotect'), row()), undefined);
    assert.equal(checkRow(entry('site.failover', 'b'), row({ action: 'site.failover', payload: { to: 'b' } })), undefined);
  });
  it('no row, another action or target, an executed or an old row: refused, each with its code', () => {
    assert.equal(checkRow(entry('site.unprotect'), undefined)?.code, 'SITE_ORDER_NOT_RECORDED');
    assert.equal(checkRow(entry('site.unprotect'), row({ action: 'site.protect' }))?.code, 'SITE_ORDER_MISMATCH');
    assert.equal(checkRow(entry('site.failover', 'a'), row({ action: 'site.failover', payload: { to: 'b' } }))?.code, 'SITE_ORDER_MISMATCH');
    assert.equal(checkRow(entry('site.unprotect'), row({ executedAt: new Date() }))?.code, 'SITE_ORDER_EXECUTED');
    assert.equal(checkRow(entry('site.unprotect'), row({ ageSeconds: ORDER_MAX_AGE_SECONDS + 1 }))?.code, 'SITE_ORDER_STALE');
  });
});
