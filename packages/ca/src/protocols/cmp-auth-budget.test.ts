import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetError } from '@fleetpki/core';
import { CmpAuthBudget } from './cmp-auth-budget.js';

describe('CmpAuthBudget', () => {
  it('a burst of failures spends the address budget at once; the next request is refused (429, with when to retry); another address is not', () => {
    let now = 0;
    const budget = new CmpAuthBudget({ burst: 3, refillPerSecond: 0.5 }, () => now);
    for (let i = 0; i < 3; i++) budget.take('10.0.0.1');
    assert.throws(() => budget.take('10.0.0.1'), (err: unknown) => isFleetError(err, 'CMP_RATE_LIMITED') && err.httpStatus === 429 && (err.details as { retryAfterSeconds: number }).retryAfterSeconds === 2);
    budget.take('10.0.0.2');
    now += 2_000;
    budget.take('10.0.0.1');
    assert.throws(() => budget.take('10.0.0.1'), (err: unknown) => isFleetError(err, 'CMP_RATE_LIMITED'));
  });

  it('requests that authenticate give their place back: honest traffic never runs out, however much of it', () => {
    const budget = new CmpAuthBudget({ burst: 2, refillPerSecond: 0.001 }, () => 0);
    for (let i = 0; i < 1_000; i++) {
      const a = budget.take('10.0.0.1');
      const b = budget.take('10.0.0.1');
      a.refund();
      b.refund();
      b.refund(); // once only
    }
    budget.take('10.0.0.1');
    budget.take('10.0.0.1');
    assert.throws(() => budget.take('10.0.0.1'), (err: unknown) => isFleetError(err, 'CMP_RATE_LIMITED'), 'a place is refunded once, not twice');
  });
});
