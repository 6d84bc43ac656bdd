import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { isFleetError } from './errors.js';
import { envSchema, loadConfig } from './config.js';

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

  it('applies an explicit URL to its own site only; the database follows it on both sites', () => {
    const config = loadConfig({ FLEETPKI_SITE: 'b', FLEETPKI_DATABASE_URL: 'postgres://u@db.example:5432/ca' });
    assert.equal(config.sites.b.databaseUrl, 'postgres://u@db.example:5432/ca');
    assert.equal(config.sites.a.databaseUrl, 'postgres://fleetpki@127.0.0.1:15432/ca');
    assert.equal(config.pgDatabase, 'ca');
  });

  it('derives the service connection from the owner connection (same host, port and database)', () => {
    const config = loadConfig({ FLEETPKI_DATABASE_URL: 'postgres://owner:secret@db.example:6432/bench_1' });
    assert.equal(config.sites.a.serviceDatabaseUrls.status, 'postgres://fleetpki_status@db.example:6432/bench_1');
    assert.equal(config.sites.b.serviceDatabaseUrls.issuer, 'postgres://fleetpki_issuer@127.0.0.1:15433/bench_1');
    const byName = loadConfig({ FLEETPKI_PG_DATABASE: 'fleetpki_test_1' });
    assert.equal(byName.sites.a.serviceDatabaseUrls.worker, 'postgres://fleetpki_worker@127.0.0.1:15432/fleetpki_test_1');
    assert.equal(byName.sites.a.serviceDatabaseUrls.operator, 'postgres://fleetpki_operator@127.0.0.1:15432/fleetpki_test_1');
    assert.equal(byName.sites.a.databaseUrl, 'postgres://fleetpki@127.0.0.1:15432/fleetpki_test_1');
  });

  for (const [name, env, pattern] of [
    ['a service URL naming another database', { FLEETPKI_DATABASE_URL: 'postgres://o@127.0.0.1:15432/bench_1', FLEETPKI_SERVICE_DATABASE_URL: 'postgres://s@127.0.0.1:15432/fleetpki' }, /FLEETPKI_SERVICE_DATABASE_URL reaches 127\.0\.0\.1:15432\/fleetpki .* 127\.0\.0\.1:15432\/bench_1/],
    ['a service URL on another host', { FLEETPKI_SERVICE_DATABASE_URL: 'postgres://s@10.0.0.9:15432/fleetpki' }, /FLEETPKI_SERVICE_DATABASE_URL reaches 10\.0\.0\.9/],
    ['FLEETPKI_DATABASE_URL and FLEETPKI_PG_DATABASE disagreeing', { FLEETPKI_DATABASE_URL: 'postgres://o@127.0.0.1:15432/bench_1', FLEETPKI_PG_DATABASE: 'fleetpki' }, /names database "bench_1" but FLEETPKI_PG_DATABASE is "fleetpki"/],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.throws(() => loadConfig(env), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && pattern.test(err.message));
    });
  }

  it('reads the approval labels under their name, or their old EST name; both set differently is refused', () => {
    assert.deepEqual(loadConfig({ FLEETPKI_APPROVAL_LABELS: 'compact-kex,smart-meter-kex' }).enrolmentHolds.labels, ['compact-kex', 'smart-meter-kex']);
    assert.deepEqual(loadConfig({ FLEETPKI_EST_APPROVAL_LABELS: 'compact-kex', FLEETPKI_EST_RETRY_AFTER_S: '5' }).enrolmentHolds, { labels: ['compact-kex'], retryAfterSeconds: 5 });
    assert.deepEqual(loadConfig({}).enrolmentHolds, { labels: [], retryAfterSeconds: 60 });
    assert.throws(() => loadConfig({ FLEETPKI_APPROVAL_LABELS: 'compact-kex', FLEETPKI_EST_APPROVAL_LABELS: 'smart-meter-kex' }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /FLEETPKI_APPROVAL_LABELS and its old name FLEETPKI_EST_APPROVAL_LABELS/.test(err.message));
  });

  it('names tokens after FLEETPKI_HSM_TOKEN_PREFIX', () => {
    const config = loadConfig({ FLEETPKI_HSM_TOKEN_PREFIX: 'fleetpki-test-1a2b' });
    assert.equal(config.sites.a.hsmTokenLabel, 'fleetpki-test-1a2b-a');
    assert.equal(config.rootTokenLabel, 'fleetpki-test-1a2b-root');
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

  it("keeps a deployment's own files in its folder (FLEETPKI_DEPLOYMENT_DIR), apart from where the clusters live", () => {
    const test = loadConfig({ FLEETPKI_STATE_DIR: '/srv/sites', FLEETPKI_DEPLOYMENT_DIR: '/tmp/fleetpki-test-1a2b.x', FLEETPKI_SITE: 'b' });
    assert.equal(test.stateDir, '/srv/sites');
    assert.equal(test.deploymentDir, '/tmp/fleetpki-test-1a2b.x');
    // The clusters are found where they live: their folders, the sites' HSMs, etcd.
    assert.equal(test.sites.a.softhsmConf, '/srv/sites/site-a/hsm/softhsm2.conf');
    assert.equal(test.sites.b.dir, '/srv/sites/site-b');
    assert.deepEqual(test.consensus.members.map((m) => m.dir), ['/srv/sites/site-a/etcd', '/srv/sites/site-b/etcd', '/srv/sites/witness/etcd']);
    // What the deployment writes is its own.
    assert.equal(test.api.tlsDir, '/tmp/fleetpki-test-1a2b.x/tls/site-b');
    assert.equal(test.sites.a.hsmPinFile, '/tmp/fleetpki-test-1a2b.x/secrets/hsm-a.pin');
    assert.equal(test.sites.b.hsmPinFile, '/tmp/fleetpki-test-1a2b.x/secrets/hsm-b.pin');
    assert.deepEqual(test.rootHsm, { dir: '/tmp/fleetpki-test-1a2b.x/root-hsm', softhsmConf: '/tmp/fleetpki-test-1a2b.x/root-hsm/softhsm2.conf' });
    // An installation keeps both in its state folder, as before.
    const installation = loadConfig({ FLEETPKI_STATE_DIR: '/srv/sites' });
    assert.equal(installation.deploymentDir, '/srv/sites');
    assert.equal(installation.api.tlsDir, '/srv/sites/tls/site-a');
    assert.equal(installation.sites.a.hsmPinFile, '/srv/sites/secrets/hsm-a.pin');
  });

  it('reads the TLS material from FLEETPKI_TLS_* without a configuration file', () => {
    const c = loadConfig({
      FLEETPKI_TLS_CA_BUNDLE: '/t/ca.pem',
      FLEETPKI_TLS_API_CERT: '/t/api.pem',
      FLEETPKI_TLS_API_KEY: 'credential:api-key',
      FLEETPKI_TLS_STATUS_CERT: 'relative/status.pem',
      FLEETPKI_TLS_STATUS_KEY: 'file:relative/status.key',
      FLEETPKI_TLS_ETCD_PEER_CERT: '/t/peer.pem',
      FLEETPKI_TLS_ETCD_PEER_KEY: '/t/peer.key',
      FLEETPKI_STATUS_HTTP_PORT_A: '18099',
      CREDENTIALS_DIRECTORY: '/run/credentials/x',
    });
    assert.equal(c.tls.caBundle, '/t/ca.pem');
    assert.deepEqual(c.tls.parts.api, { cert: '/t/api.pem', key: '/run/credentials/x/api-key' });
    // Relative paths are the working directory's, as the file's absolute paths would be.
    assert.deepEqual(c.tls.parts.status, { cert: resolve('relative/status.pem'), key: resolve('relative/status.key') });
    assert.deepEqual(c.tls.parts.etcdPeer, { cert: '/t/peer.pem', key: '/t/peer.key' });
    assert.equal(c.api.tls, true);
    assert.equal(c.sites.a.statusUrl, 'https://127.0.0.1:18090');
    assert.equal(c.sites.a.statusHttpPort, 18099);
    assert.equal(c.ocspUrl, 'http://127.0.0.1:18099/ocsp');
    // Every part has its pair of variables.
    for (const part of ['API', 'STATUS', 'POSTGRES', 'REDIS', 'ETCD', 'ETCD_PEER', 'ETCD_CLIENT']) {
      assert.ok(`FLEETPKI_TLS_${part}_CERT` in envSchema.shape && `FLEETPKI_TLS_${part}_KEY` in envSchema.shape, part);
    }
  });

  it('refuses half a TLS pair from the environment, naming both variables', () => {
    assert.throws(() => loadConfig({ FLEETPKI_TLS_CA_BUNDLE: '/t/ca.pem', FLEETPKI_TLS_REDIS_CERT: '/t/redis.pem' }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /FLEETPKI_TLS_REDIS_CERT is set but not FLEETPKI_TLS_REDIS_KEY/.test(err.message));
    assert.throws(() => loadConfig({ FLEETPKI_TLS_STATUS_CERT: '/t/s.pem', FLEETPKI_TLS_STATUS_KEY: '/t/s.key' }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /tls\.status needs tls\.caBundle/.test(err.message));
    assert.throws(() => loadConfig({ FLEETPKI_TLS_CA_BUNDLE: '/t/ca.pem', FLEETPKI_TLS_API_CERT: '/t/a.pem', FLEETPKI_TLS_API_KEY: '/t/a.key', FLEETPKI_API_TLS: 'off' }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /FLEETPKI_API_TLS is off but tls\.api names/.test(err.message));
  });

  it('refuses two parts on one port', () => {
    assert.throws(() => loadConfig({ FLEETPKI_PG_PORT_B: '15432' }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /must all differ/.test(err.message));
  });
});
