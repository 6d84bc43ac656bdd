import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Daemon } from './daemon.js';
import type { DaemonJob } from './daemon-job.js';

const quiet = { warn: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function countingJob(pass: () => Promise<boolean>, everyMs = 10): DaemonJob & { calls: number } {
  const job = {
    name: 'test-job',
    everyMs,
    calls: 0,
    async pass() {
      job.calls++;
      return pass();
    },
  };
  return job;
}

describe('Daemon', () => {
  it('runs passes until stopped, and stop waits for the pass under way', async () => {
    let inPass = false;
    let finishedAfterStop = false;
    const job = countingJob(async () => {
      inPass = true;
      await sleep(30);
      inPass = false;
      return false;
    }, 5);
    const daemon = new Daemon(job, { log: quiet });
    daemon.start();
    for (let i = 0; i < 500 && !inPass; i++) await sleep(1);
    assert.equal(inPass, true);
    await daemon.stop();
    finishedAfterStop = !inPass;
    assert.equal(finishedAfterStop, true, 'stop resolved only after the pass ended');
    const calls = job.calls;
    await sleep(40);
    assert.equal(job.calls, calls, 'no pass after stop');
    assert.equal(daemon.stats.passes, calls);
    assert.ok(daemon.stats.lastDurationMs! >= 25);
  });

  it('goes again without the pause while a backlog remains', async () => {
    let backlog = 5;
    const job = countingJob(async () => --backlog > 0, 60_000);
    const daemon = new Daemon(job, { log: quiet });
    daemon.start();
    for (let i = 0; i < 500 && job.calls < 5; i++) await sleep(10);
    await sleep(30);
    await daemon.stop();
    assert.equal(job.calls, 5, 'five passes back to back, then the (long) pause');
  });

  it('asks the leader check before each pass and counts the passes skipped', async () => {
    let leader = false;
    const job = countingJob(async () => false);
    const daemon = new Daemon(job, { log: quiet, mayRun: async () => leader });
    assert.equal(await daemon.runOnce(), false);
    assert.equal(job.calls, 0);
    assert.equal(daemon.stats.skippedNotLeader, 1);
    leader = true;
    await daemon.runOnce();
    assert.equal(job.calls, 1);
    assert.equal(daemon.stats.passes, 1);
  });

  it('logs and counts a failed pass, and keeps running', async () => {
    const warnings: string[] = [];
    let n = 0;
    const job = countingJob(async () => {
      if (n++ === 0) throw Object.assign(new Error('store away'), { code: 'STORE_DOWN' });
      return false;
    }, 5);
    const daemon = new Daemon(job, { log: { warn: (_d, message) => warnings.push(message) } });
    daemon.start();
    for (let i = 0; i < 500 && daemon.stats.passes < 1; i++) await sleep(10);
    await daemon.stop();
    assert.equal(daemon.stats.failures, 1);
    assert.ok(daemon.stats.passes >= 1, 'passes after the failure');
    assert.match(warnings[0]!, /test-job: pass failed/);
    assert.ok(daemon.stats.lastPassAt instanceof Date);
  });

  it('never overlaps passes, whoever asks for them', async () => {
    let active = 0;
    let most = 0;
    const job = countingJob(async () => {
      most = Math.max(most, ++active);
      await sleep(5);
      active--;
      return false;
    });
    const daemon = new Daemon(job, { log: quiet });
    daemon.start();
    await Promise.all([daemon.runOnce(), daemon.runOnce(), daemon.runOnce()]);
    await daemon.stop();
    assert.equal(most, 1);
  });

  it('reports a pass that outlives its deadline once, and not a pass that ends in time', async () => {
    const stuck: [string, number][] = [];
    let release!: () => void;
    const hanging = countingJob(() => new Promise<boolean>((r) => (release = () => r(false))));
    const daemon = new Daemon(hanging, { log: quiet, passDeadlineMs: 30, onStuck: (job, ms) => stuck.push([job, ms]) });
    const pass = daemon.runOnce();
    await sleep(120);
    assert.deepEqual(stuck, [['test-job', 30]], 'reported once, naming the job and its deadline');
    release();
    await pass;
    const quick = new Daemon(countingJob(async () => false), { log: quiet, passDeadlineMs: 30, onStuck: (job, ms) => stuck.push([job, ms]) });
    await quick.runOnce();
    await sleep(60);
    assert.equal(stuck.length, 1, 'a pass that ended in time is not reported later');
  });
});
