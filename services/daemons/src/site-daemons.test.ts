import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { passDeadlineFrom } from './site-daemons.js';

describe('FLEETPKI_DAEMONS_PASS_DEADLINE_MS', () => {
  it('takes a whole number of milliseconds, at least 30 s, and refuses anything else naming the variable', () => {
    assert.equal(passDeadlineFrom(undefined), 600_000);
    assert.equal(passDeadlineFrom(''), 600_000);
    assert.equal(passDeadlineFrom('90000'), 90_000);
    assert.throws(() => passDeadlineFrom('5s'), (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /FLEETPKI_DAEMONS_PASS_DEADLINE_MS.*"5s"/.test(err.message));
    assert.throws(() => passDeadlineFrom('10'), /at least 30000/);
    assert.throws(() => passDeadlineFrom('29999'), /at least 30000/);
    assert.equal(passDeadlineFrom('30000'), 30_000);
    assert.throws(() => passDeadlineFrom('1500.5'), /whole number/);
  });
});
