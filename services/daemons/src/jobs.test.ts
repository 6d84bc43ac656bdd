import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JOBS, selectJobs } from './site-daemons.js';

describe('the daemons registry', () => {
  it('names every job of a site once, in kebab-case', () => {
    assert.deepEqual(Object.keys(JOBS), ['crl-publisher', 'ocsp-preproducer', 'ocsp-refresher', 'audit-sealer']);
    for (const name of Object.keys(JOBS)) assert.match(name, /^[a-z]+(-[a-z]+)*$/);
  });

  it('--only selects by name and refuses a name that is no job', () => {
    assert.equal(selectJobs(undefined), undefined);
    assert.deepEqual(selectJobs('crl-publisher, audit-sealer'), ['crl-publisher', 'audit-sealer']);
    assert.throws(() => selectJobs('crl-publisher,ocsp-responder'), { code: 'DAEMON_UNKNOWN' });
  });
});
