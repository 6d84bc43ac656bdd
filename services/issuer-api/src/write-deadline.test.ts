import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { FleetError } from '@fleetpki/core';
import { installWriteDeadline } from './write-deadline.js';

/** An API whose one write waits `routeMs`, then fails or answers; the standby is gone since `since`. */
async function apiWithBlockedStandby(route: 'fails' | 'answers', routeMs: number) {
  const lines: { level: number; msg: string; err?: { message: string } }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
      done();
    },
  });
  const app = Fastify({ logger: { level: 'info', stream } });
  const since = new Date();
  const guard = {
    writesBlocked: async () => ({ since }),
    standbyUnavailable: (at: Date) => new FleetError('STANDBY_UNAVAILABLE', `the synchronous standby is unreachable since ${at.toISOString()}`, { httpStatus: 503, details: { retryAfterSeconds: 5 } }),
  };
  installWriteDeadline(app, guard, 50);
  let settled: () => void;
  const routeSettled = new Promise<void>((resolve) => (settled = resolve));
  app.post('/v1/things', async () => {
    await new Promise((r) => setTimeout(r, routeMs));
    settled();
    if (route === 'fails') throw new Error('Connection terminated unexpectedly');
    return { ok: true };
  });
  await app.ready();
  return { app, lines, routeSettled };
}

describe('write deadline', () => {
  it('answers 503 STANDBY_UNAVAILABLE to a write still waiting on a gone standby, and tells its later failure as a warning, not as an error', async () => {
    const { app, lines, routeSettled } = await apiWithBlockedStandby('fails', 300);
    const res = await app.inject({ method: 'POST', url: '/v1/things', payload: {} });
    assert.equal(res.statusCode, 503);
    assert.equal((res.json() as { code: string }).code, 'STANDBY_UNAVAILABLE');
    assert.ok(res.headers['retry-after']);
    await routeSettled;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no error-level line');
    const warned = lines.find((l) => l.msg === 'a write answered 503 while it waited for the synchronous standby failed afterwards');
    assert.equal(warned?.err?.message, 'Connection terminated unexpectedly');
    await app.close();
  });

  it('leaves a write that answers in time alone, and still turns a failure before any answer into an error response', async () => {
    const quick = await apiWithBlockedStandby('answers', 0);
    const ok = await quick.app.inject({ method: 'POST', url: '/v1/things', payload: {} });
    assert.equal(ok.statusCode, 200);
    await quick.app.close();
    const failing = await apiWithBlockedStandby('fails', 0);
    const failed = await failing.app.inject({ method: 'POST', url: '/v1/things', payload: {} });
    assert.equal(failed.statusCode, 500);
    await failing.app.close();
  });
});
