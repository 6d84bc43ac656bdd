import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isFleetError } from '../errors.js';
import { EXAMPLE_CONFIG } from './example.js';
import { findRepoRoot, loadConfig } from './load.js';
import { checkServiceCredentials, serviceSecretFiles } from './service-secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'fleetpki-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** A configuration file with this text; the environment that names it. */
function file(text: string, env: Record<string, string> = {}): Record<string, string> {
  const path = join(dir, `fleetpki-${n++}.yaml`);
  writeFileSync(path, text);
  return { FLEETPKI_CONFIG: path, ...env };
}

const GOOD = `
this: { site: b }
database: { name: ca, owner: ca_owner }
sites:
  a: { host: 10.0.1.10, postgres: { port: 5432 }, redis: { port: 6379 }, api: { port: 8443 }, status: { port: 8080 } }
  b: { host: 10.0.2.10, postgres: { port: 5432, host: db-b.example.net }, redis: { port: 6379 }, api: { port: 8443, url: 'https://ca-b.example.net:8443/' }, status: { port: 9443, httpPort: 8080 } }
etcd:
  members:
    a: { clientUrl: 'https://10.0.1.10:2379', peerUrl: 'https://10.0.1.10:2380' }
    b: { clientUrl: 'https://10.0.2.10:2379', peerUrl: 'https://10.0.2.10:2380' }
    witness: { clientUrl: 'https://10.0.3.10:2379', peerUrl: 'https://10.0.3.10:2380' }
hsm:
  a: { modulePath: /opt/hsm/libvendor.so, token: { label: ca-a }, pin: /etc/fleetpki/a.pin }
  b: { modulePath: /opt/hsm/libvendor.so, token: { slot: 3 }, pin: 'file:/etc/fleetpki/b.pin' }
api: { host: 10.0.2.10, tls: true }
tls: { caBundle: /etc/fleetpki/tls/ca.pem, status: { cert: /etc/fleetpki/tls/status.pem, key: /etc/fleetpki/tls/status.key } }
crl: { baseUrl: 'http://crl.example.net/crl/' }
ocsp: { maxAgeSeconds: 60 }
`;

describe('the configuration file', () => {
  it('describes a deployment on three hosts: sites, their parts, etcd, the HSMs', () => {
    const c = loadConfig(file(GOOD));
    assert.equal(c.site, 'b');
    assert.deepEqual(c.thisHost.name, 'b');
    assert.equal(c.sites.a.databaseUrl, 'postgres://ca_owner@10.0.1.10:5432/ca');
    assert.equal(c.sites.b.databaseUrl, 'postgres://ca_owner@db-b.example.net:5432/ca');
    assert.equal(c.sites.b.serviceDatabaseUrls.issuer, 'postgres://fleetpki_issuer@db-b.example.net:5432/ca');
    assert.equal(c.sites.a.redisUrl, 'redis://10.0.1.10:6379');
    assert.equal(c.sites.a.apiUrl, 'https://10.0.1.10:8443');
    assert.equal(c.sites.b.apiUrl, 'https://ca-b.example.net:8443');
    // tls.status: the status port is HTTPS; OCSP and CRLs also on site b's plain listener (httpPort).
    assert.equal(c.sites.a.statusUrl, 'https://10.0.1.10:8080');
    assert.equal(c.sites.b.statusUrl, 'https://10.0.2.10:9443');
    assert.equal(c.sites.b.statusHttpPort, 8080);
    assert.deepEqual(c.consensus.endpoints, ['https://10.0.1.10:2379', 'https://10.0.2.10:2379', 'https://10.0.3.10:2379']);
    assert.equal(c.consensus.members[2]!.peerUrl, 'https://10.0.3.10:2380');
    assert.equal(c.pkcs11Module, '/opt/hsm/libvendor.so');
    assert.deepEqual({ ...c.sites.b.hsm }, { modulePath: '/opt/hsm/libvendor.so', softhsmConf: undefined, tokenLabel: 'fleetpki-b', slot: 3, pinSource: 'file:/etc/fleetpki/b.pin', pinFile: '/etc/fleetpki/b.pin' });
    assert.equal(c.sites.a.hsmTokenLabel, 'ca-a');
    assert.equal(c.sites.a.hsmPinFile, '/etc/fleetpki/a.pin');
    assert.equal(c.ocspMaxAgeSeconds, 60);
    assert.equal(c.ocspUrl, 'http://10.0.2.10:8080/ocsp');
    assert.equal(c.crlBaseUrl, 'http://crl.example.net/crl/');
    // What the file leaves out keeps its default.
    assert.equal(c.api.rateLimitPerMinute, 120_000);
    assert.equal(c.cmp.confirmWaitSeconds, 300);
  });

  it('the example (infra/fleetpki.example.yaml, `fleetpki config example`) validates, for each of its three hosts', () => {
    assert.equal(readFileSync(join(findRepoRoot(), 'infra', 'fleetpki.example.yaml'), 'utf8'), EXAMPLE_CONFIG);
    const env = file(EXAMPLE_CONFIG, { CREDENTIALS_DIRECTORY: '/run/credentials/fleetpki-issuer-api.service' });
    const a = loadConfig(env);
    assert.equal(a.sites.a.hsmPinFile, '/run/credentials/fleetpki-issuer-api.service/hsm-pin');
    assert.equal(a.secrets.postgres.operator, '/etc/fleetpki/secrets/pg-operator');
    assert.equal(a.tls.parts.api?.key, '/run/credentials/fleetpki-issuer-api.service/api-tls-key');
    assert.equal(a.sites.b.hsm.slot, 0);
    const b = loadConfig(file(EXAMPLE_CONFIG.replace('site: a ', 'site: b ').replace('host: 10.0.1.10             #', 'host: 10.0.2.10             #'), { CREDENTIALS_DIRECTORY: '/run/credentials/x' }));
    assert.equal(b.site, 'b');
    const witness = loadConfig(file(EXAMPLE_CONFIG.replace('site: a ', 'site: witness ').replace(/services: \[postgres[^\]]*\]/, 'services: [etcd]'), { CREDENTIALS_DIRECTORY: '/run/credentials/x' }));
    assert.deepEqual(witness.thisHost, { name: 'witness', services: ['etcd'] });
  });

  for (const [name, text, expected] of [
    ['a port that is not a number', 'sites: { b: { postgres: { port: abc } } }', 'sites.b.postgres.port: expected a port 1-65535, got "abc"'],
    ['a port out of range', 'sites: { a: { redis: { port: 70000 } } }', 'sites.a.redis.port: expected a port 1-65535, got 70000'],
    ['a misspelt key', 'sites: { a: { potgres: { port: 5432 } } }', 'sites.a.potgres: unknown key'],
    ['an unknown site', 'this: { site: c }', 'this.site: expected a, b or witness, got "c"'],
    ['a relative module path', 'hsm: { a: { modulePath: libsofthsm2.so } }', 'hsm.a.modulePath: expected an absolute path, got "libsofthsm2.so"'],
    ['a PIN given as a value', 'hsm: { b: { pin: "1234" } }', 'hsm.b.pin: expected a secret source: file:/path, /path or credential:<name>, got "1234"'],
    ['an etcd URL that is not one', 'etcd: { members: { witness: { clientUrl: "10.0.3.10:2379" } } }', 'etcd.members.witness.clientUrl: expected a http(s):// URL'],
    ['a tunable out of range', 'ocsp: { onDemand: { concurrency: 99 } }', 'ocsp.onDemand.concurrency: expected a whole number 1-16, got 99'],
    ['a boolean written as a word', 'api: { tls: yes please }', 'api.tls: expected true or false, got "yes please"'],
    ['a TLS key with no certificate', 'tls: { api: { key: credential:api-key } }', 'tls.api.cert: expected an absolute path, got nothing'],
    ['two parts on one host and port', 'sites: { a: { host: h1, postgres: { port: 5432 }, redis: { port: 5432 } } }', 'sites.a.postgres and sites.a.redis both listen on h1:5432'],
    ['a database URL naming another database', 'database: { name: ca }\nsites: { a: { postgres: { url: "postgres://o@db:5432/other" } } }', 'sites.a.postgres.url names database "other" but database.name is "ca"'],
    ['plain HTTP off loopback', 'sites: { a: { host: 10.0.1.10 } }', 'api.host=10.0.1.10 needs FLEETPKI_API_TLS=on'],
    ['tls.api without a CA bundle', 'tls: { api: { cert: /t/api.pem, key: /t/api.key } }', 'tls.api needs tls.caBundle'],
    ['api.tls off while tls.api names a pair', 'api: { tls: false }\ntls: { caBundle: /t/ca.pem, api: { cert: /t/api.pem, key: /t/api.key } }', 'api.tls is off but tls.api names'],
    ['an http status URL with tls.status', "sites: { a: { status: { url: 'http://ocsp.example.net' } } }\ntls: { caBundle: /t/ca.pem, status: { cert: /t/s.pem, key: /t/s.key } }", 'sites.a.status.url=http://ocsp.example.net must be https://'],
    ['an http API URL with the API on HTTPS', "api: { tls: true }\nsites: { b: { api: { url: 'http://ca-b.example.net' } } }", 'sites.b.api.url=http://ca-b.example.net must be https://'],
    ['a plain status listener without tls.status', 'sites: { a: { status: { httpPort: 18099 } } }', 'sites.a.status.httpPort is the plain-HTTP listener for OCSP and CRLs beside HTTPS; it needs tls.status'],
    ['the plain status listener on a port taken', 'sites: { a: { status: { httpPort: 18080 } } }\ntls: { caBundle: /t/ca.pem, status: { cert: /t/s.pem, key: /t/s.key } }', 'sites.a.api and sites.a.status.httpPort both listen on 127.0.0.1:18080'],
    ['the status responder in plain HTTP off loopback', 'sites: { a: { host: 10.0.1.10 } }\napi: { tls: true }', 'the status responder would listen on sites.a.host=10.0.1.10 in plain HTTP'],
    ['a witness running services', 'this: { site: witness, services: [etcd, issuer-api] }', 'this.services: the witness host runs etcd only'],
    ['a file that is not YAML', 'sites: { a: [', 'not valid YAML'],
    ['a simulation subnet that is not a /24', 'simulation: { netns: true, subnet: 10.78.0.0/16 }', 'simulation.subnet: expected a /24 subnet'],
    ['a veth prefix too long for the kernel', 'simulation: { netns: true, linkPrefix: fleetpkiinst }', 'simulation.linkPrefix: expected a link prefix'],
  ] as const) {
    it(`refuses ${name}, naming the key`, () => {
      const env = file(text);
      assert.throws(() => loadConfig(env), (err: unknown) => {
        assert.ok(isFleetError(err, 'CONFIG_INVALID'), String(err));
        assert.ok(err.message.includes(expected), `${err.message}\n  does not include\n${expected}`);
        return true;
      });
    });
  }

  it("places a second simulation on its own namespaces, addresses and links (simulation.*), the default's untouched", () => {
    const own = loadConfig(file('simulation: { netns: true, namespacePrefix: fpinst, subnet: 10.78.0.0/24, linkPrefix: fpi }'));
    assert.deepEqual([own.sites.a.host, own.sites.b.host, own.consensus.members.find((m) => m.name === 'witness')!.host], ['10.78.0.1', '10.78.0.2', '10.78.0.3']);
    assert.deepEqual([own.sites.a.netns, own.sites.b.netns], ['fpinst-a', 'fpinst-b']);
    assert.deepEqual([own.simulation.rootHost, own.simulation.subnet, own.simulation.linkPrefix, own.simulation.namespaces.witness], ['10.78.0.254', '10.78.0.0/24', 'fpi', 'fpinst-witness']);
    const standard = loadConfig(file('simulation: { netns: true }'));
    assert.deepEqual([standard.sites.a.host, standard.sites.a.netns, standard.simulation.rootHost, standard.simulation.linkPrefix], ['10.77.0.1', 'fleetpki-a', '10.77.0.254', 'fpk']);
  });

  it('names every problem at once, and the file', () => {
    const env = file('sites: { a: { api: { port: 0 } } }\nlog: { level: loud }');
    assert.throws(() => loadConfig(env), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && err.message.includes(env.FLEETPKI_CONFIG!) && /sites\.a\.api\.port: .*; log\.level: /.test(err.message));
  });

  it('refuses a FLEETPKI_CONFIG that names no file', () => {
    assert.throws(() => loadConfig({ FLEETPKI_CONFIG: join(dir, 'missing.yaml') }), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /cannot read .*missing\.yaml.*ENOENT/.test(err.message));
  });

  it('lets a variable override one key of the file: environment, then file, then defaults', () => {
    const env = file('sites: { a: { postgres: { port: 25432 } }, b: { postgres: { port: 25433 } } }\nwriteWaitMs: 9000\nhsm: { a: { token: { label: from-file } } }');
    const fromFile = loadConfig(env);
    assert.equal(fromFile.sites.a.pgPort, 25432);
    assert.equal(fromFile.writeWaitMs, 9000);
    assert.equal(fromFile.sites.a.hsmTokenLabel, 'from-file');
    assert.equal(fromFile.siteLease.leaseMs, 5_000); // default
    const overridden = loadConfig({ ...env, FLEETPKI_PG_PORT_A: '35432', FLEETPKI_WRITE_WAIT_MS: '1000', FLEETPKI_HSM_TOKEN_PREFIX: 'fleetpki-test-1a2b' });
    assert.equal(overridden.sites.a.pgPort, 35432);
    assert.equal(overridden.sites.b.pgPort, 25433); // the file's, where no variable says otherwise
    assert.equal(overridden.writeWaitMs, 1000);
    // A token prefix names every token of the deployment, over labels the file gives.
    assert.equal(overridden.sites.a.hsmTokenLabel, 'fleetpki-test-1a2b-a');
  });

  it('applies the process-site variables to the site the environment or the file says is this one', () => {
    const env = file('this: { site: b }', { FLEETPKI_DATABASE_URL: 'postgres://u@db.example:5432/ca', FLEETPKI_HSM_PIN_FILE: '/run/pin' });
    const c = loadConfig(env);
    assert.equal(c.sites.b.databaseUrl, 'postgres://u@db.example:5432/ca');
    assert.equal(c.sites.a.databaseUrl, 'postgres://fleetpki@127.0.0.1:15432/ca');
    assert.equal(c.sites.b.hsmPinFile, '/run/pin');
    assert.equal(loadConfig({ ...env, FLEETPKI_SITE: 'a' }).sites.a.hsmPinFile, '/run/pin');
  });

  it('moves an etcd member by its port variable, keeping its scheme and host', () => {
    const c = loadConfig(file("etcd: { members: { a: { clientUrl: 'https://10.0.1.10:2379', peerUrl: 'https://10.0.1.10:2380' } } }", { FLEETPKI_ETCD_PORT_A: '14879' }));
    assert.equal(c.consensus.members[0]!.clientUrl, 'https://10.0.1.10:14879');
    assert.equal(c.consensus.members[0]!.peerUrl, 'https://10.0.1.10:14880');
  });

  it('places a member the file leaves out with https when tls.etcd / tls.etcdPeer are set', () => {
    const tls = 'tls: { caBundle: /etc/fleetpki/tls/ca.pem, etcd: { cert: /etc/fleetpki/tls/etcd.pem, key: /etc/fleetpki/tls/etcd.key }, etcdPeer: { cert: /etc/fleetpki/tls/peer.pem, key: /etc/fleetpki/tls/peer.key }, etcdClient: { cert: /etc/fleetpki/tls/client.pem, key: /etc/fleetpki/tls/client.key } }';
    const c = loadConfig(file(tls, { FLEETPKI_ETCD_PORT_B: '14979' }));
    const b = c.consensus.members.find((m) => m.name === 'b')!;
    assert.match(b.clientUrl, /^https:\/\/[^/]+:14979$/);
    assert.match(b.peerUrl, /^https:\/\/[^/]+:14980$/);
  });

  it('names the variable when a value it set is wrong in the file\'s terms', () => {
    assert.throws(() => loadConfig(file('', { FLEETPKI_ETCD_PORT_WITNESS: '65535' })), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && err.message.includes('etcd.members.witness.peerUrl (from FLEETPKI_ETCD_PORT_WITNESS)'));
  });

  it('reads a systemd credential from $CREDENTIALS_DIRECTORY; a service started without it is refused, the CLI is not', () => {
    const text = 'hsm: { a: { pin: "credential:hsm-pin" } }\nsecrets: { postgres: { issuer: "credential:pg-issuer" }, redis: /etc/fleetpki/redis.pw }';
    const c = loadConfig(file(text, { CREDENTIALS_DIRECTORY: '/run/credentials/fleetpki-issuer-api.service' }));
    assert.equal(c.sites.a.hsmPinFile, '/run/credentials/fleetpki-issuer-api.service/hsm-pin');
    assert.equal(c.sites.a.hsm.pinSource, 'credential:hsm-pin');
    assert.equal(c.secrets.postgres.issuer, '/run/credentials/fleetpki-issuer-api.service/pg-issuer');
    assert.equal(c.secrets.redis, '/etc/fleetpki/redis.pw');
    // An operator's shell has no CREDENTIALS_DIRECTORY: the CLI loads the file (it reads none of the services' credentials)...
    const shell = loadConfig(file(text));
    assert.equal(shell.sites.a.hsmPinFile, '/run/credentials/CREDENTIALS_DIRECTORY-is-not-set/hsm-pin', 'absolute: never a file in the working directory');
    // ...and a service started the same way is refused at start, naming the key.
    assert.throws(() => checkServiceCredentials(shell, 'batch-worker', {}), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /hsm\.a\.pin is the systemd credential "hsm-pin", but CREDENTIALS_DIRECTORY is not set/.test(err.message));
  });

  it('refuses to start a service whose unit does not load a credential its configuration names, and only for what that service reads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-credentials-'));
    try {
      writeFileSync(join(dir, 'hsm-pin'), '1234\n');
      writeFileSync(join(dir, 'pg-issuer'), 'x'.repeat(20));
      const text = 'hsm: { a: { pin: "credential:hsm-pin" } }\nsecrets: { postgres: { issuer: "credential:pg-issuer", worker: "credential:pg-worker" } }\ntls: { caBundle: /t/ca.pem, postgres: { cert: /t/pg.pem, key: /t/pg.key }, etcd: { cert: /t/e.pem, key: /t/e.key }, etcdClient: { cert: /t/ec.pem, key: "credential:etcd-client-tls-key" } }';
      const env = { CREDENTIALS_DIRECTORY: dir };
      const c = loadConfig(file(text, env));
      assert.deepEqual(serviceSecretFiles(c, 'issuer-api').map((s) => s.key), ['hsm.a.pin', 'secrets.postgres.issuer', 'tls.etcdClient.key']);
      assert.throws(() => checkServiceCredentials(c, 'issuer-api', env), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && err.message.includes('tls.etcdClient.key is the systemd credential "etcd-client-tls-key", which issuer-api cannot read') && err.message.includes('add LoadCredential=etcd-client-tls-key:<file> to its unit') && !err.message.includes('pg-issuer'));
      writeFileSync(join(dir, 'etcd-client-tls-key'), 'key');
      checkServiceCredentials(c, 'issuer-api', env);
      // The worker's role password is the batch worker's business, not the API's.
      assert.throws(() => checkServiceCredentials(c, 'batch-worker', env), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && err.message.includes('secrets.postgres.worker is the systemd credential "pg-worker"'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves the API and the status responder over HTTPS as tls.api and tls.status say, OCSP and CRLs also on a plain listener', () => {
    const tls = 'tls: { caBundle: /t/ca.pem, api: { cert: /t/api.pem, key: "credential:api-key" }, status: { cert: /t/status.pem, key: "file:/t/status.key" } }';
    const c = loadConfig(file(`${tls}\nsites: { a: { host: 10.0.1.10, status: { httpPort: 8080 } }, b: { host: 10.0.2.10 } }`, { CREDENTIALS_DIRECTORY: '/run/credentials/x' }));
    // tls.api alone makes the API HTTPS (api.tls unset), on both sites' URLs.
    assert.equal(c.api.tls, true);
    assert.deepEqual(c.tls.parts.api, { cert: '/t/api.pem', key: '/run/credentials/x/api-key' });
    assert.equal(c.tls.parts.status?.key, '/t/status.key');
    assert.equal(c.sites.b.apiUrl, 'https://10.0.2.10:18081');
    assert.equal(c.sites.a.statusUrl, 'https://10.0.1.10:18090');
    assert.equal(c.sites.b.statusUrl, 'https://10.0.2.10:18091');
    // Devices fetch OCSP and CRLs over plain HTTP where a listener serves them, else over the status port's HTTPS.
    assert.equal(c.ocspUrl, 'http://10.0.1.10:8080/ocsp');
    assert.equal(c.crlBaseUrl, 'http://10.0.1.10:8080/crl/');
    const b = loadConfig(file(`${tls}\nthis: { site: b }\nsites: { b: { host: 10.0.2.10 } }`, { CREDENTIALS_DIRECTORY: '/run/credentials/x' }));
    assert.equal(b.ocspUrl, 'https://10.0.2.10:18091/ocsp');
    // The witness runs no status responder: no HTTPS asked of it.
    assert.equal(loadConfig(file('this: { site: witness }\nsites: { a: { host: 10.0.1.10 } }\napi: { tls: true }')).thisHost.name, 'witness');
    // Nor a host whose services leave it out.
    assert.equal(loadConfig(file('this: { services: [postgres, issuer-api] }\nsites: { a: { host: 10.0.1.10 } }\napi: { tls: true }')).sites.a.statusUrl, 'http://10.0.1.10:18090');
  });

  it('keeps SoftHSM\'s configuration file for SoftHSM only', () => {
    assert.match(loadConfig(file('')).sites.a.hsm.softhsmConf ?? '', /site-a\/hsm\/softhsm2\.conf$/);
    assert.equal(loadConfig(file('hsm: { a: { modulePath: /opt/hsm/libvendor.so } }')).sites.a.hsm.softhsmConf, undefined);
  });

  it('metrics listeners: ports kept free for every batch worker instance, scrapers as addresses or CIDR ranges', () => {
    const c = loadConfig(file('sites: { a: { metrics: { daemons: 19101, worker: 19110, scrapers: [10.0.9.0/24, "::1"] } } }'));
    assert.deepEqual([c.sites.a.metrics.daemons, c.sites.a.metrics.worker, c.sites.a.metrics.agent, c.sites.a.metrics.scrapers], [19101, 19110, 18102, ['10.0.9.0/24', '::1']]);
    assert.throws(() => loadConfig(file('sites: { a: { metrics: { daemons: 19113, worker: 19110 } } }')), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /sites\.a\.metrics\.worker \(batch worker @4\) and sites\.a\.metrics\.daemons|sites\.a\.metrics\.daemons and sites\.a\.metrics\.worker \(batch worker @4\)/.test(err.message));
    assert.throws(() => loadConfig(file('sites: { a: { metrics: { scrapers: [10.0.0.0/33] } } }')), (err: unknown) => isFleetError(err, 'CONFIG_INVALID') && /sites\.a\.metrics\.scrapers: "10\.0\.0\.0\/33"/.test(err.message));
  });
});
