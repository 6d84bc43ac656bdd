import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DaemonJob } from '@fleetpki/core';
import { yieldingToRevocations } from './status-jobs.js';

function countingJob(): DaemonJob & { runs: number } {
  const job = {
    name: 'crl-publisher',
    everyMs: 500,
    runs: 0,
    async pass() {
      job.runs++;
      return false;
    },
  };
  return job;
}

describe('yieldingToRevocations', () => {
  it('skips its pass while a responder re-signs revocations, and runs once it is done', async () => {
    let resigning = true;
    const job = countingJob();
    const yielding = yieldingToRevocations(job, { revocationsBeingResigned: async () => resigning });
    assert.equal(yielding.name, 'crl-publisher');
    assert.equal(yielding.everyMs, 500);
    assert.equal(await yielding.pass(), false);
    assert.equal(job.runs, 0, 'held back');
    resigning = false;
    await yielding.pass();
    assert.equal(job.runs, 1);
  });

  it('never waits longer than maxDeferMs in a row: a lock held for ever (stuck responder, or a status role holding it) does not stop CRLs', async () => {
    const job = countingJob();
    const yielding = yieldingToRevocations(job, { revocationsBeingResigned: async () => true }, 30);
    await yielding.pass();
    assert.equal(job.runs, 0);
    await new Promise((r) => setTimeout(r, 40));
    await yielding.pass();
    assert.equal(job.runs, 1, 'ran after 30 ms of waiting');
    await yielding.pass();
    assert.equal(job.runs, 1, 'then waits again: while the lock stays held it runs once every maxDeferMs');
  });
});
