import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FleetApiClient } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createStatusRuntime, type StatusRuntime } from '@fleetpki/status-responder';
import type { Pool } from '@fleetpki/store';
import { opensslAsync, type TestCa } from './support/ca.js';
import { openOcspTestbed, type EnrolledDevice, type OcspTestbed } from './support/ocsp-testbed.js';
import { type StatusSiteRuntime, preProduceFor } from './support/status.js';

/**
 * The status responder's cache and the daemons in another process (issue 37): a responder started
 * after the daemons pre-produced warms its cache from the store, and one already running loads what
 * the daemons store afterwards from the feed (migrations/0042), so relying parties' first requests are
 * answered from memory. What is loaded in bulk is checked as a lookup is: a tampered row is not.
 * Every answer is checked with `openssl ocsp`. Nothing runs by itself here (tickEveryMs 0).
 */

let bed: OcspTestbed;
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let status: StatusSiteRuntime;
let officer: FleetApiClient;

before(async () => {
  bed = await openOcspTestbed('warm');
  ({ config, pool, ca, status, officer } = bed);
});

after(async () => {
  await bed?.close();
});

type Device = EnrolledDevice;

const enrolDevice = (): Promise<EnrolledDevice> => bed.enrolDevice();

/** A responder of its own (a process started now), listening, with nothing in its cache. */
async function freshResponder(): Promise<{ runtime: StatusRuntime; url: string }> {
  const runtime = await createStatusRuntime({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0, site: status.site });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  return { runtime, url: `http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}` };
}

async function opensslSays(url: string, device: Device): Promise<string> {
  const text = await opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-sha1', '-cert', device.path, '-url', `${url}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']);
  assert.match(text, /Response verify OK/);
  return /: (good|revoked|unknown)\b/.exec(text)?.[1] ?? text;
}

/** Passes of the feed until nothing more waits (what the rest of the suite stored comes first). */
async function followAll(runtime: StatusRuntime): Promise<void> {
  while (await runtime.warmer.follow());
}

const cached = (runtime: StatusRuntime, device: Device) => runtime.ocsp.cache.fresh('sha1', Buffer.from(device.serial, 'hex'))?.answer.kind;

describe('the responder\'s cache from the store', () => {
  it('a responder started after pre-production warms its cache at start, and a tampered row stays out of it', async () => {
    const [a, b, tampered] = [await enrolDevice(), await enrolDevice(), await enrolDevice()];
    await preProduceFor(status, pool, [a.serial, b.serial, tampered.serial]);
    // Another certificate's signed response under this serial (a writer of ocsp_responses could put it there).
    await pool.query(`UPDATE ocsp_responses SET der = (SELECT der FROM ocsp_responses WHERE serial = $2 AND hash_alg = 'sha1') WHERE serial = $1 AND hash_alg = 'sha1'`, [Buffer.from(tampered.serial, 'hex'), Buffer.from(a.serial, 'hex')]);
    const { runtime, url } = await freshResponder();
    try {
      assert.equal(runtime.warmer.status.state, 'cold');
      assert.ok((await runtime.warmer.warmUp()) >= 2);
      assert.equal(runtime.warmer.status.state, 'warm');
      assert.equal(cached(runtime, a), 'good');
      assert.equal(cached(runtime, b), 'good');
      assert.equal(cached(runtime, tampered), undefined, 'not servable as stored: not loaded');
      const health = (await runtime.app.inject({ method: 'GET', url: '/healthz' })).json<{ cache: { state: string; entries: number } }>();
      assert.equal(health.cache.state, 'warm');
      assert.ok(health.cache.entries >= 2);
      assert.equal(await opensslSays(url, a), 'good');
      assert.equal(await opensslSays(url, tampered), 'good', 'answered from a signature of its own');
    } finally {
      await runtime.close();
    }
  });

  it('a running responder loads what the daemons store afterwards from the feed, revocations re-signed elsewhere included', async () => {
    const { runtime, url } = await freshResponder();
    try {
      await runtime.warmer.warmUp();
      const [a, b] = [await enrolDevice(), await enrolDevice()];
      assert.equal(cached(runtime, a), undefined);
      await preProduceFor(status, pool, [a.serial, b.serial]);
      await followAll(runtime);
      assert.equal(cached(runtime, a), 'good');
      assert.equal(cached(runtime, b), 'good');
      assert.ok(runtime.warmer.status.followed >= 2);
      assert.equal(await opensslSays(url, a), 'good');

      // Another responder of the site re-signs the revocation and stores it; this one's "good" for b is
      // never served meanwhile (the generation moved), and the feed brings the revoked response.
      assert.equal((await officer.revoke({ serials: [b.serial] }, 'keyCompromise')).revoked, 1);
      assert.equal(await opensslSays(url, b), 'revoked');
      await status.tick();
      await followAll(runtime);
      assert.equal(cached(runtime, b), 'revoked');
      assert.equal(await opensslSays(url, b), 'revoked');
    } finally {
      await runtime.close();
    }
  });
});
