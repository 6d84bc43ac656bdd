import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RevocationService, postgresStatusStore } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { REVOCATION_SLICE, type Pool } from '@fleetpki/store';
import { createSyntheticCaDatabase, type SyntheticCaDatabase } from '../scripts/lib/synthetic-ca.js';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

// A long revocation list revoked slice by slice (so OCSP starts re-signing while the rest is inserted),
// on synthetic certificate rows in a throw-away database: 2 full slices and a part.
let config: FleetConfig;
let sitePool: Pool;
let data: SyntheticCaDatabase;
const count = 2 * REVOCATION_SLICE + 500;

before(async () => {
  config = await ensureSites();
  sitePool = siteAPool(config);
  await ensureCa(config, sitePool);
  data = await createSyntheticCaDatabase(config, count + 100);
});

after(async () => {
  await data?.drop();
  await sitePool?.end();
});

describe('a revocation list longer than one slice', () => {
  it('is revoked in slices of REVOCATION_SLICE (an audit row each), names what it did not find, and a second run skips what is revoked', async () => {
    const serials = await data.serials(count);
    const strangers = [randomBytes(16), randomBytes(16)];
    const revocations = new RevocationService(postgresStatusStore(data.pool), 'a');
    const request = { target: { kind: 'serials' as const, serials: [...serials, ...strangers] }, reason: 1, requestedBy: 'test:slices', manufacturerId: null, approvalId: null };
    const first = await revocations.revoke(request);
    assert.equal(first.revoked, count);
    assert.equal(first.alreadyRevoked, 0);
    assert.deepEqual(first.notFound.map((b) => b.toString('hex')).sort(), strangers.map((b) => b.toString('hex')).sort());
    const { rows: audit } = await data.pool.query<{ slice: number; revoked: number }>(
      `SELECT (details->>'slice')::int AS slice, (details->>'revoked')::int AS revoked FROM audit_events WHERE action = 'revocation.request' AND actor = 'test:slices' ORDER BY seq`,
    );
    assert.deepEqual(audit, [
      { slice: 0, revoked: REVOCATION_SLICE },
      { slice: 1, revoked: REVOCATION_SLICE },
      { slice: 2, revoked: count - 2 * REVOCATION_SLICE },
    ]);
    const { rows: stored } = await data.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM revocations WHERE serial = ANY($1::bytea[])', [serials]);
    assert.equal(stored[0]!.n, count);

    const again = await revocations.revoke(request);
    assert.equal(again.revoked, 0);
    assert.equal(again.alreadyRevoked, count);
  });

  it('under a person\'s threshold stays one transaction: past it nothing of the list is revoked', async () => {
    const serials = await data.serials(100, count);
    const { rows } = await data.pool.query<{ id: string }>("INSERT INTO people (id, name, role) VALUES (gen_random_uuid(), $1, 'revocation-officer') RETURNING id", [`slices-${randomBytes(4).toString('hex')}`]);
    const revocations = new RevocationService(postgresStatusStore(data.pool), 'a');
    await assert.rejects(
      revocations.revoke({ target: { kind: 'serials', serials }, reason: 1, requestedBy: 'test:threshold', manufacturerId: null, personId: rows[0]!.id, threshold: { certificates: 10, windowMinutes: 60 } }),
      (err: Error & { code?: string }) => err.code === 'DUAL_CONTROL_THRESHOLD',
    );
    const { rows: stored } = await data.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM revocations WHERE serial = ANY($1::bytea[])', [serials]);
    assert.equal(stored[0]!.n, 0);
  });
});
