import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SiteLease } from '@fleetpki/ca';
import { checkEtcdTls, etcdClientTls, etcdctlTlsFlags, openConsensus, readEtcdPassword, type EtcdIdentity } from '@fleetpki/consensus';
import { isFleetError, renderConfigFile, type FleetConfig } from '@fleetpki/core';
import { ensureEtcd, etcdServerTlsFlags, localDeployment, stopEtcd } from '@fleetpki/sites';
import { etcdTlsConfig, etcdTlsMembers } from './support/etcd-tls.js';
import { makeTestTlsCa, type TestTlsCa, type TestTlsPair } from './support/tls-material.js';

/**
 * etcd with TLS, client certificates and peer TLS (issue 34). A throw-away 3-member cluster of its own
 * (temp folder, free ports), started by the function `sites up` uses (ensureEtcd), so the shared sites'
 * etcd stays on loopback http for every other test file. The attacks first: no certificate, another CA's
 * certificate, a bundle that does not hold etcd's CA, a wrong password; then the roles at work over TLS.
 * Attack test: not run again on the secure simulation: it starts parts of its own with TLS and authentication on.
 */
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-etcd-tls-'));
let ca: TestTlsCa;
let wrongCa: TestTlsCa;
let client: TestTlsPair;
let config: FleetConfig;

const HOSTS = ['127.0.0.1', 'localhost'];

const configFile = (yaml: string): FleetConfig => etcdTlsConfig(dir, yaml);

function withTls(c: FleetConfig, tls: Partial<{ caBundle: string; etcdClient: TestTlsPair; etcd: TestTlsPair }>): FleetConfig {
  return { ...c, tls: { caBundle: tls.caBundle ?? c.tls.caBundle, parts: { ...c.tls.parts, ...(tls.etcdClient ? { etcdClient: tls.etcdClient } : {}), ...(tls.etcd ? { etcd: tls.etcd } : {}) } } };
}

/** etcdctl, the tool anyone who reaches etcd has: `flags` stand for the TLS material the caller holds. */
function etcdctl(c: FleetConfig, flags: readonly string[], as: EtcdIdentity | undefined, args: readonly string[]): { ok: boolean; output: string } {
  const user = as ? { ETCDCTL_USER: `${as}:${readEtcdPassword(c, as)}` } : {};
  const run = spawnSync('etcdctl', ['--endpoints', c.consensus.endpoints.join(','), ...flags, '--dial-timeout', '2s', '--command-timeout', '3s', ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3', ...user } });
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
}

before(async () => {
  ca = makeTestTlsCa('fleetpki etcd-tls test CA', join(dir, 'ca'));
  wrongCa = makeTestTlsCa('another CA', join(dir, 'wrong-ca'));
  const server = ca.server('etcd', HOSTS);
  const peer = ca.server('etcd-peer', HOSTS);
  // A CN that is no etcd user: the certificate alone grants no role (etcd-tls.ts).
  client = ca.client('etcd-client', 'fleetpki-etcd-client');
  config = configFile(`etcd:
  ${await etcdTlsMembers()}
tls:
  caBundle: ${ca.caPem}
  etcd: { cert: ${server.cert}, key: ${server.key} }
  etcdPeer: { cert: ${peer.cert}, key: ${peer.key} }
  etcdClient: { cert: ${client.cert}, key: ${client.key} }
`);
  await ensureEtcd(config);
});

after(async () => {
  if (config) await stopEtcd(config);
  rmSync(dir, { recursive: true, force: true });
});

describe('etcd over TLS with client certificates', () => {
  it('serves https only: plain http and a client without a certificate are refused', () => {
    assert.ok(config.consensus.members.every((m) => m.clientUrl.startsWith('https://') && m.peerUrl.startsWith('https://')));
    const plain = { ...config, consensus: { ...config.consensus, endpoints: config.consensus.endpoints.map((u) => u.replace('https:', 'http:')) } };
    const overHttp = etcdctl(plain, [], 'operator', ['get', '--prefix', config.consensus.prefix]);
    assert.equal(overHttp.ok, false, `plain http is refused: ${overHttp.output}`);
    // Trusting etcd's CA is not enough: etcd wants a certificate from its own CA (--client-cert-auth).
    const noCert = etcdctl(config, ['--cacert', ca.caPem], 'operator', ['get', '--prefix', config.consensus.prefix]);
    assert.equal(noCert.ok, false, `no client certificate is refused: ${noCert.output}`);
    const withCert = etcdctl(config, etcdctlTlsFlags(config), 'operator', ['get', '--prefix', config.consensus.prefix]);
    assert.equal(withCert.ok, true, `the same call with the client certificate is answered: ${withCert.output}`);
  });

  it('refuses a client certificate from another CA (ETCD_TLS_REFUSED at start, and every call)', async () => {
    const foreign = withTls(config, { etcdClient: wrongCa.client('foreign-client', 'fleetpki-etcd-client') });
    await assert.rejects(checkEtcdTls(foreign), (err: unknown) => isFleetError(err, 'ETCD_TLS_REFUSED') && /^etcd at 127\.0\.0\.1:\d+ refused this host's client certificate/.test(err.message));
    const c = openConsensus(foreign, 'operator');
    try {
      await assert.rejects(c.get(`${config.consensus.prefix}drill`).string());
    } finally {
      c.close();
    }
    const cli = etcdctl(foreign, etcdctlTlsFlags(foreign), 'operator', ['get', '--prefix', config.consensus.prefix]);
    assert.equal(cli.ok, false, `etcdctl with the foreign certificate is refused: ${cli.output}`);
  });

  it('fails at start with ETCD_TLS_UNTRUSTED naming the endpoint when the bundle does not hold etcd\'s CA', async () => {
    const untrusting = withTls(config, { caBundle: wrongCa.caPem });
    await assert.rejects(checkEtcdTls(untrusting), (err: unknown) => {
      assert.ok(isFleetError(err, 'ETCD_TLS_UNTRUSTED'), String(err));
      assert.match(err.message, /etcd at 127\.0\.0\.1:\d+ presents a certificate that tls\.caBundle/);
      assert.ok(!err.message.includes(readFileSync(client.key, 'utf8').split('\n')[1]!), 'no key material in the message');
      return true;
    });
    // `sites up` against running members says the same, at once rather than after its 30 s wait.
    const started = Date.now();
    await assert.rejects(ensureEtcd(untrusting), (err: unknown) => isFleetError(err, 'ETCD_TLS_UNTRUSTED'));
    assert.ok(Date.now() - started < 10_000);
    // And so does a service's site lease (issuer-api, status-responder, batch-worker) before its first read.
    const lease = new SiteLease(untrusting, 'a', 'postgres://127.0.0.1:1/unused');
    try {
      await assert.rejects(lease.start(), (err: unknown) => isFleetError(err, 'ETCD_TLS_UNTRUSTED'));
    } finally {
      await lease.close();
    }
  });

  it('refuses a wrong password over TLS, as over http', async () => {
    const wrongDir = join(dir, 'wrong-credentials');
    mkdirSync(wrongDir, { mode: 0o700 });
    writeFileSync(join(wrongDir, 'operator'), 'not-the-operator-password-at-all\n', { mode: 0o600 });
    const c = openConsensus({ ...config, consensus: { ...config.consensus, credentialsDir: wrongDir } }, 'operator');
    try {
      await assert.rejects(c.get(`${config.consensus.prefix}drill`).string(), /authentication failed|invalid/i);
    } finally {
      c.close();
    }
  });

  it('keeps the roles over TLS: the operator writes orders/, a service only reads, a certificate alone reads nothing', async () => {
    const key = `${config.consensus.prefix}orders/etcd-tls-probe`;
    const operator = openConsensus(config, 'operator');
    const service = openConsensus(config, 'service');
    try {
      await operator.put(key).value('{"probe":true}');
      assert.equal(await service.get(key).string(), '{"probe":true}');
      await assert.rejects(async () => await service.put(key).value('{}'), /permission denied/i);
      await operator.delete().key(key);
      assert.equal(await service.get(key).string(), null);
    } finally {
      operator.close();
      service.close();
    }
    // No password: etcd takes the certificate's CN as the user, and that user does not exist.
    const anonymous = etcdctl(config, etcdctlTlsFlags(config), undefined, ['get', '--prefix', config.consensus.prefix]);
    assert.equal(anonymous.ok, false, `the client certificate without a password reads nothing: ${anonymous.output}`);
  });
});

describe('etcd TLS material is checked before anything starts', () => {
  it('a member given a server certificate from another CA does not start (ETCD_TLS_UNTRUSTED naming it)', () => {
    const foreign = withTls(config, { etcd: wrongCa.server('foreign-etcd', HOSTS) });
    assert.throws(() => etcdServerTlsFlags(foreign, foreign.consensus.members[0]!), (err: unknown) => isFleetError(err, 'ETCD_TLS_UNTRUSTED') && /etcd member a \(127\.0\.0\.1:\d+\).*not issued by a CA in tls\.caBundle/.test(err.message));
  });

  it('a server key that is not the certificate\'s, or a certificate not naming the host, is refused', () => {
    const other = ca.server('other-etcd', HOSTS);
    const mismatched = withTls(config, { etcd: { cert: config.tls.parts.etcd!.cert, key: other.key } });
    assert.throws(() => etcdServerTlsFlags(mismatched, mismatched.consensus.members[0]!), (err: unknown) => isFleetError(err, 'ETCD_TLS_MATERIAL') && /is not the key of tls\.etcd\.cert/.test(err.message));
    const elsewhere = withTls(config, { etcd: ca.server('elsewhere-etcd', ['etcd.example.net']) });
    assert.throws(() => etcdServerTlsFlags(elsewhere, elsewhere.consensus.members[0]!), (err: unknown) => isFleetError(err, 'ETCD_TLS_MATERIAL') && /does not name 127\.0\.0\.1/.test(err.message));
  });

  it('refuses a client certificate whose CN is an etcd user (it would be that user without a password)', () => {
    const rooted = withTls(config, { etcdClient: ca.client('root-client', 'root') });
    assert.throws(() => etcdClientTls(rooted), (err: unknown) => isFleetError(err, 'ETCD_TLS_MATERIAL') && /CN=root, an etcd user/.test(err.message));
  });

  it('the file `sites up` writes for the processes it starts carries the TLS material with the https URLs', () => {
    const reread = configFile(renderConfigFile(localDeployment(config), ['etcd-tls test']));
    assert.deepEqual(reread.consensus.endpoints, config.consensus.endpoints);
    assert.deepEqual(reread.tls, config.tls);
    assert.ok(etcdClientTls(reread), 'a process reading it reaches etcd with the client pair');
  });

  it('refuses plaintext next to named material, in the configuration', () => {
    const server = config.tls.parts.etcd!;
    assert.throws(() => configFile(`etcd: { members: { a: { clientUrl: 'http://127.0.0.1:1' } } }
tls:
  caBundle: ${ca.caPem}
  etcd: { cert: ${server.cert}, key: ${server.key} }
  etcdClient: { cert: ${client.cert}, key: ${client.key} }
`), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /etcd\.members\.a\.clientUrl=http:\/\/127\.0\.0\.1:1 must be https:\/\//.test(err.message));
    assert.throws(() => configFile(`tls:
  caBundle: ${ca.caPem}
  etcd: { cert: ${server.cert}, key: ${server.key} }
`), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /tls\.etcdClient/.test(err.message));
  });
});
