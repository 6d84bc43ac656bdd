import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { ProgressDeadline } from './progress-deadline.js';

const stalled = () => new Error('stalled');
const overdue = () => new Error('overdue');

async function* chunks(sizes: readonly number[], pauseMs = 0): AsyncGenerator<Buffer> {
  for (const n of sizes) {
    if (pauseMs) await sleep(pauseMs);
    yield Buffer.alloc(n);
  }
}

async function* thenSilence(first: Buffer): AsyncGenerator<Buffer> {
  yield first;
  await new Promise(() => undefined);
}

async function* trickle(pauseMs: number): AsyncGenerator<Buffer> {
  for (;;) {
    await sleep(pauseMs);
    yield Buffer.alloc(1);
  }
}

async function drain(source: AsyncIterable<Buffer>, perChunk?: () => Promise<void>): Promise<number> {
  let bytes = 0;
  for await (const c of source) {
    bytes += c.length;
    await perChunk?.();
  }
  return bytes;
}

describe('ProgressDeadline', () => {
  it('passes a source that keeps up through unchanged', async () => {
    const read = new ProgressDeadline(chunks([10, 2_000, 3]), { idleMs: 1_000, progressBytes: 1_024, totalMs: 10_000, stalled, overdue });
    assert.equal(await drain(read), 2_013);
    assert.equal(read.expired, undefined);
  });

  it('cuts a source that goes silent, after what it did send', async () => {
    const read = new ProgressDeadline(thenSilence(Buffer.alloc(100)), { idleMs: 100, progressBytes: 1_024, totalMs: 60_000, stalled, overdue });
    let got = 0;
    await assert.rejects(drain(read, async () => void (got += 100)), /stalled/);
    assert.equal(got, 100);
    assert.equal(read.expired?.message, 'stalled');
  });

  it('cuts a source that trickles: bytes keep coming, but fewer than progressBytes per idle window', async () => {
    const read = new ProgressDeadline(trickle(10), { idleMs: 150, progressBytes: 1_024, totalMs: 60_000, stalled, overdue });
    await assert.rejects(drain(read), /stalled/);
  });

  it('cuts a source that keeps up but never ends, at the total deadline', async () => {
    async function* endless(): AsyncGenerator<Buffer> {
      for (;;) {
        await sleep(10);
        yield Buffer.alloc(4_096);
      }
    }
    const read = new ProgressDeadline(endless(), { idleMs: 5_000, progressBytes: 1_024, totalMs: 300, stalled, overdue });
    await assert.rejects(drain(read), /overdue/);
    assert.equal(read.expired?.message, 'overdue');
  });

  it('does not count the time its consumer takes', async () => {
    const read = new ProgressDeadline(chunks([1, 1, 1, 1]), { idleMs: 50, progressBytes: 1_024, totalMs: 60_000, stalled, overdue });
    assert.equal(await drain(read, () => sleep(150)), 4);
  });
});
