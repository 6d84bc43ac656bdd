import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { createPool, type Pool } from '@fleetpki/store';
import { ensureCa, siteAPool } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * Organisation-certificate intents (migrations/0041) tried as the holder of each role that may record
 * them (an outside review of issue 37 found a service role could record intents for client and server
 * certificates). Every attempt runs in a transaction that is rolled back.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let owner: Pool;
const pools: Partial<Record<'issuer' | 'status' | 'operator', Pool>> = {};

before(async () => {
  config = await ensureSites();
  owner = siteAPool(config);
  await ensureCa(config, owner);
  for (const client of ['issuer', 'status', 'operator'] as const) pools[client] = createPool(config.sites.a.serviceDatabaseUrls[client], { max: 2, applicationName: `fleetpki-test-intents-${client}` });
});

after(async () => {
  await Promise.all(Object.values(pools).map((p) => p.end()));
  await owner?.end();
});

/** Records one intent of `purpose` as `client`'s role, rolled back: undefined when accepted, else the error. */
async function record(client: 'issuer' | 'status' | 'operator', purpose: string): Promise<string | undefined> {
  const connection = await pools[client]!.connect();
  try {
    await connection.query('BEGIN');
    const serial = randomBytes(9);
    serial[0] = 0x21;
    await connection.query('SELECT fp_organisation_intent_record($1, $2, $3)', [serial, purpose, randomBytes(32)]);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await connection.query('ROLLBACK').catch(() => undefined);
    connection.release();
  }
}

describe('organisation-certificate intents by role', () => {
  for (const client of ['issuer', 'status'] as const) {
    it(`fleetpki_${client} records intents for its own CMP and audit certificates only, not for client or server ones`, async () => {
      assert.equal(await record(client, 'cmp'), undefined);
      assert.equal(await record(client, 'audit'), undefined);
      for (const purpose of ['client', 'server']) assert.match((await record(client, purpose)) ?? 'accepted', /ROLE_FORBIDDEN/, `${client} recording a ${purpose} intent`);
    });
  }

  it('fleetpki_operator (the CLI) records intents for client and server certificates', async () => {
    assert.equal(await record('operator', 'client'), undefined);
    assert.equal(await record('operator', 'server'), undefined);
  });
});
