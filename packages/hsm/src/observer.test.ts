import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { HsmError } from './errors.js';
import { observeHsm, observed, type HsmObserver } from './observer.js';

function recorder(throwing = false): HsmObserver & { events: string[] } {
  const events: string[] = [];
  const note = (e: string) => {
    events.push(e);
    if (throwing) throw new Error('metrics broke');
  };
  return {
    events,
    operation: ({ key, kind }) => note(`op ${key} ${kind}`),
    failure: ({ key, code }) => note(`fail ${key} ${code}`),
    relogin: () => note('relogin'),
    token: ({ token, up }) => note(`token ${token} ${up ? 'up' : 'down'}`),
  };
}

describe('the HSM observer', () => {
  afterEach(() => observeHsm(undefined));

  it('reports a success, and a failure by its code; a key of its own is not the token down', async () => {
    const r = recorder();
    observeHsm(r);
    assert.equal(await observed('t', 'k', 'sign', async () => 42), 42);
    await assert.rejects(observed('t', 'k', 'sign', async () => Promise.reject(new HsmError('HSM_KEY_NOT_FOUND', 'gone'))), { code: 'HSM_KEY_NOT_FOUND' });
    await assert.rejects(observed('t', 'k', 'sign', async () => Promise.reject(new HsmError('HSM_OPERATION_FAILED', 'token gone'))), { code: 'HSM_OPERATION_FAILED' });
    assert.deepEqual(r.events, ['op k sign', 'token t up', 'fail k HSM_KEY_NOT_FOUND', 'fail k HSM_OPERATION_FAILED', 'token t down']);
  });

  it('an observer that throws changes nothing: the signature is returned, the error is the HSM\'s', async () => {
    observeHsm(recorder(true));
    assert.equal(await observed('t', 'k', 'sign', async () => 'signature'), 'signature');
    await assert.rejects(observed('t', 'k', 'sign', async () => Promise.reject(new HsmError('HSM_OPERATION_FAILED', 'x'))), { code: 'HSM_OPERATION_FAILED' });
  });
});
