import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFleetError } from './errors.js';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('defaults to the local two-site topology', () => {
    const config = loadConfig({});
    assert.equal(config.site, 'a');
    assert.equal(config.sites.a.pgPort, 15432);
    assert.equal(config.sites.b.pgPort, 15433);
    assert.match(config.sites.a.databaseUrl, /^postgres:\/\/fleetpki@127\.0\.0\.1:15432\/fleetpki$/);
    assert.equal(config.sites.b.hsmTokenLabel, 'fleetpki-b');
    assert.ok(config.stateDir.endsWith('.fleetpki'));
  });

  it('applies an explicit URL to its own site only', () => {
    const config = loadConfig({ FLEETPKI_SITE: 'b', FLEETPKI_DATABASE_URL: 'postgres://u@db.example:5432/ca' });
    assert.equal(config.sites.b.databaseUrl, 'postgres://u@db.example:5432/ca');
    assert.match(config.sites.a.databaseUrl, /:15432\//);
  });

  for (const [variable, value] of [
    ['FLEETPKI_SITE', 'c'],
    ['FLEETPKI_PG_PORT_A', 'eighty'],
    ['FLEETPKI_REDIS_PORT_B', '80'],
    ['FLEETPKI_DATABASE_URL', 'mysql://x@y/z'],
    ['FLEETPKI_LOG_LEVEL', 'loud'],
  ] as const) {
    it(`names ${variable} when it is invalid`, () => {
      assert.throws(
        () => loadConfig({ [variable]: value }),
        (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && err.message.includes(variable),
      );
    });
  }

  it('refuses two parts on one port', () => {
    assert.throws(() => loadConfig({ FLEETPKI_PG_PORT_B: '15432' }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /must all differ/.test(err.message));
  });
});
