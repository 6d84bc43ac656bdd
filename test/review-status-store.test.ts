import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FleetApiClient } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createPool, type Pool } from '@fleetpki/store';
import { openssl, opensslAsync, type TestCa } from './support/ca.js';
import { openOcspTestbed, type EnrolledDevice, type OcspTestbed } from './support/ocsp-testbed.js';
import { localUrl } from './support/sites.js';
import { createStatusSite, type StatusSiteRuntime, preProduceFor } from './support/status.js';

/**
 * Review (branch review-1): what the status data in the store lets a database role do to relying
 * parties. The invariant (ARCHITECTURE.md): once a revocation is acknowledged, no site answers "good"
 * for it. The responder serves a stored OCSP response when the row's `status` column equals the
 * certificate's status, and checks only the response's CertID (ocsp-responder.ts canonical()), not
 * the certStatus inside the signed bytes; CRLs are served from `crls` as stored. fleetpki_status may
 * UPDATE ocsp_responses and crls, fleetpki_operator crls (0016): an old, validly signed "good" response
 * or an old CRL put back is served as current by every responder that has not cached the answer (a
 * restarted process, the standby site).
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let bed: OcspTestbed;
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let status: StatusSiteRuntime;
let officer: FleetApiClient;

before(async () => {
  bed = await openOcspTestbed('review');
  ({ config, pool, ca, status, officer } = bed);
});

after(async () => {
  await bed?.close();
});

const enrolDevice = (): Promise<EnrolledDevice> => bed.enrolDevice();

/** A responder with a cold cache, as a restarted process or the standby site's starts. */
async function withColdResponder<T>(fn: (url: string, cold: StatusSiteRuntime) => Promise<T>): Promise<T> {
  const cold = await createStatusSite({ ...config, site: 'a' }, { logger: false, tickEveryMs: 0 });
  try {
    await cold.app.listen({ host: '127.0.0.1', port: 0 });
    return await fn(localUrl(config, 'status', (cold.app.server.address() as AddressInfo).port), cold);
  } finally {
    await cold.close();
  }
}

describe('review: status data a database role can put back', () => {
  it('fleetpki_status cannot make a revoked meter read "good": an old signed response stored under status "revoked" is not served', async () => {
    const device = await enrolDevice();
    const serial = Buffer.from(device.serial, 'hex');
    await preProduceFor(status, pool, [device.serial]);
    const { rows } = await pool.query<{ der: Buffer }>(`SELECT der FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1' AND status = 'good'`, [serial]);
    const oldGood = rows[0]!.der; // also what any relying party fetched before the revocation
    assert.equal((await officer.revoke({ serials: [device.serial] }, 'keyCompromise')).revoked, 1);
    await status.revocations.applyAllNewRevocations();

    const statusRole = createPool(config.sites.a.serviceDatabaseUrls.status, { max: 1, applicationName: 'fleetpki-review-status' });
    try {
      await statusRole.query(`UPDATE ocsp_responses SET der = $2, status = 'revoked', next_update = now() + interval '30 days' WHERE serial = $1 AND hash_alg = 'sha1'`, [serial, oldGood]);
    } finally {
      await statusRole.end();
    }
    const answer = await withColdResponder((url) => opensslAsync(['ocsp', '-issuer', ca.issuingPem, '-sha1', '-cert', device.path, '-url', `${url}/ocsp`, '-CAfile', ca.rootPem, '-no_nonce']));
    assert.match(answer, /Response verify OK/);
    assert.match(answer, /: revoked\b/, `a responder with a cold cache answered for the revoked meter:\n${answer}`);
  });

  it('fleetpki_operator cannot put back an older CRL of a shard (without the latest revocation)', async () => {
    const device = await enrolDevice();
    const { rows: shardRows } = await pool.query<{ crl_shard: number }>('SELECT crl_shard FROM certificates WHERE serial = $1', [Buffer.from(device.serial, 'hex')]);
    const shard = shardRows[0]!.crl_shard;
    await status.publisher!.publishAll();
    const { rows: before } = await pool.query<{ der: Buffer; crl_number: string; this_update: Date; covers_until: Date; entries: number }>(
      `SELECT der, crl_number::text, this_update, covers_until, entries FROM crls WHERE ca_id = 'fpd1' AND shard = $1 AND kind = 'full'`,
      [shard],
    );
    const old = before[0]!;
    assert.equal((await officer.revoke({ serials: [device.serial] }, 'keyCompromise')).revoked, 1);
    await status.publisher!.publishDue();

    const operatorRole = createPool(config.sites.a.serviceDatabaseUrls.operator, { max: 1, applicationName: 'fleetpki-review-operator' });
    let written = 'written';
    try {
      await operatorRole
        .query(`UPDATE crls SET der = $2, crl_number = $3, this_update = $4, next_update = now() + interval '30 days', covers_until = $5, entries = $6 WHERE ca_id = 'fpd1' AND shard = $1 AND kind = 'full'`, [
          shard,
          old.der,
          old.crl_number,
          old.this_update,
          old.covers_until,
          old.entries,
        ])
        .catch((err: Error) => (written = err.message));
    } finally {
      await operatorRole.end();
    }
    const served = await withColdResponder(async (url, cold) => {
      // The publisher does not see the shard as due (its row says "next update in 30 days").
      await cold.publisher?.publishDue();
      const res = await fetch(`${url}/crl/fpd1/s${String(shard).padStart(4, '0')}.crl`);
      return Buffer.from(await res.arrayBuffer());
    });
    const text = openssl(['crl', '-inform', 'DER', '-noout', '-text'], served);
    const number = /X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)?.[1];
    assert.ok(text.toUpperCase().includes(device.serial.toUpperCase()), `the served CRL of shard ${shard} (CRL number ${number}, the operator's UPDATE: ${written}) no longer lists the revoked meter ${device.serial}`);
  });

  it('no service role holds back every revocation: fp_lock_revocations in a transaction left open by fleetpki_operator', async () => {
    const device = await enrolDevice();
    const operatorRole = createPool(config.sites.a.serviceDatabaseUrls.operator, { max: 1, applicationName: 'fleetpki-review-lock' });
    const held = await operatorRole.connect();
    // The server ends this connection (idle in transaction): an error event, expected here.
    held.on('error', () => undefined);
    try {
      await held.query('BEGIN');
      await held.query('SELECT fp_lock_revocations()'); // granted to fleetpki_operator and fleetpki_status (0015/0016)
      const holder = (await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const revocation = officer.revoke({ serials: [device.serial] }, 'keyCompromise').then(
        (r) => `answered: ${r.revoked} revoked`,
        (err: Error) => `answered: ${err.message}`,
      );
      // The officer's revocation, as PostgreSQL sees it: waiting for the operator's lock, for as long as it is held.
      const blocked = await new Promise<boolean>((resolve) => {
        const deadline = Date.now() + 15_000;
        const poll = async () => {
          const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))', [holder]);
          if (rows[0]!.n > 0) return resolve(true);
          if (Date.now() > deadline) return resolve(false);
          setTimeout(poll, 100);
        };
        void poll();
      });
      // The holder does nothing more: its idle transaction is ended by the server (migrations/0028), the
      // lock goes with it, and the revocation completes; nobody has to notice and let go.
      const answered = await Promise.race([revocation, new Promise<string>((r) => setTimeout(() => r('still waiting after 25 s'), 25_000))]);
      assert.equal(blocked, true, 'the revocation did wait for the lock (the scenario happened)');
      assert.equal(answered, 'answered: 1 revoked', `the officer's revocation waited on the lock fleetpki_operator holds: ${answered}`);
      await assert.rejects(held.query('SELECT 1'), 'the idle transaction holding the lock was ended by the server');
    } finally {
      await held.query('ROLLBACK').catch(() => undefined);
      held.release();
      await operatorRole.end();
    }
  });
});
