import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { FleetApiClient } from '@fleetpki/client';
import { InternalHttps, findRepoRoot, type FleetConfig, type SiteId } from '@fleetpki/core';
import { syntheticEui64 } from '@fleetpki/manifest';
import { currentRoles, netnsAvailable, readTopology, sitesUp, stopProcess, waitForHttp } from '@fleetpki/sites';
import { createPool, migrate, pgLinkSecurity, type Pool } from '@fleetpki/store';
import { generateDeviceKeys, toPem } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool, type TestCa } from './support/ca.js';
import { HOSTS, TLS_PARTS, hostConfig, installedCli, layOut, startAndWaitForExit, startInstalled, tearDown, writeHostFile, type InstalledHosts } from './support/installed-hosts.js';
import { OcspAsker, verdictOf } from './support/ocsp.js';
import { agentLogTails, partitionMidBatch } from './support/partition-scenario.js';
import { ensureSites, waitFor } from './support/sites.js';
import { makeTestTlsCa } from './support/tls-material.js';

/**
 * Deploy on real hosts (issue 34): the installed layout on three network namespaces. Every fleetpki
 * program runs from the installation (FLEETPKI_INSTALLATION_DIR, `node services/NAME/dist/main.js`: no
 * tsx), each host reads its own fleetpki.yaml (the three differ only in `this:`), and every link is
 * authenticated and encrypted: etcd (client certificates), PostgreSQL (scram over TLS, clients and
 * replication), Redis (ACL users over TLS), the API and status responders (HTTPS). The internal pairs are
 * issued by the installed CLI (`fleetpki tls internal issue`) from the test run's organisation CA.
 * Nothing is on loopback: the parts listen on their hosts' addresses, reached over veth links.
 */
const install = process.env.FLEETPKI_INSTALLATION_DIR;
const skip = !install
  ? 'needs an installation: FLEETPKI_INSTALLATION_DIR (scripts/test-compiled.sh makes one)'
  : !netnsAvailable()
    ? 'needs root and ip netns (the hosts are network namespaces)'
    : false;
// This checkout's own folder: two checkouts running this file at once never share it.
const dir = join(findRepoRoot(), '.two-hosts-installed');
let h: InstalledHosts;
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let factoryToken: string;
const children: ChildProcess[] = [];
const SITE_SERVICES = ['issuer-api', 'status-responder', 'batch-worker', 'daemons'] as const;

/** What the suite's run gave this process (its loopback deployment): the CLI that issues the internal pairs runs in it. */
let suiteEnv: NodeJS.ProcessEnv;

/** Issues every part's pair with the installed CLI, as an administrator of the suite's CA, into `out`. */
async function issueInternalTls(out: string): Promise<void> {
  const suite = await ensureSites();
  const suitePool = siteAPool(suite);
  try {
    await ensureCa(suite, suitePool);
    const adminFile = join(h.dir, 'secrets', 'admin.token');
    writeFileSync(adminFile, await createToken(suitePool, 'administrator', null, `installed-admin-${randomBytes(3).toString('hex')}`), { mode: 0o600 });
    // The suite's deployment as its processes have it, and its state folder (the installation's own would be empty).
    const env = { ...Object.fromEntries(Object.entries(suiteEnv).filter(([k]) => k.startsWith('FLEETPKI_') && k !== 'FLEETPKI_CONFIG')), FLEETPKI_STATE_DIR: suite.stateDir };
    // One pair per part naming all three hosts: the files are the same path on every host (they differ
    // only in `this:`), and on this one machine that path is one file.
    const names = Object.values(HOSTS).join(',');
    for (const part of TLS_PARTS) {
      const r = await installedCli(install!, ['tls', 'internal', 'issue', '--part', part, ...(part === 'etcdClient' ? [] : ['--names', names]), '--days', '2', '--out', out, '--token-file', adminFile], env);
      assert.equal(r.code, 0, `tls internal issue --part ${part}: ${r.output}`);
    }
  } finally {
    await suitePool.end();
  }
}

function start(name: string, site: SiteId): ChildProcess {
  const child = startInstalled(h, config, name, site);
  children.push(child);
  return child;
}

before(async () => {
  if (skip) return;
  suiteEnv = { ...process.env };
  await tearDown(dir, install!);
  h = layOut(dir, install!);
  await issueInternalTls(h.tlsDir);
  // From here on this process and what it starts know only the host files: no variable of the suite's
  // run (ports, database, tokens) may override a key of theirs.
  for (const k of Object.keys(process.env)) if (k.startsWith('FLEETPKI_') && k !== 'FLEETPKI_RUNTIME' && k !== 'FLEETPKI_INSTALLATION_DIR') delete process.env[k];
  process.env.FLEETPKI_RUNTIME = 'compiled';
  config = hostConfig(h, 'a');
  await sitesUp(config, () => undefined, { hostFiles: { a: h.files.a, b: h.files.b } });
  pool = createPool(config.sites.a.databaseUrl, { max: 2, security: pgLinkSecurity(config, 'owner') });
  await migrate(pool, join(install!, 'migrations'));
  ca = await ensureCa(config, pool);
  // Site B's token gets its clone of the CA keys, as the custodians do it (installed CLI, each on its host's file).
  const custodian = await issueApiToken(pool, { site: 'a', actor: 'test', name: 'installed-custodian', role: 'custodian', manufacturerId: null, expiresDays: 1 });
  const shares = join(h.dir, 'shares');
  mkdirSync(shares, { mode: 0o700 });
  const created = await installedCli(install!, ['custody', 'create', '--custodians', '3', '--threshold', '2', '--out', shares], { FLEETPKI_CONFIG: h.files.a, FLEETPKI_TOKEN: custodian });
  assert.equal(created.code, 0, created.output);
  const restored = await installedCli(install!, ['custody', 'restore', '--site', 'b', ...[1, 2].flatMap((n) => ['--share', join(shares, `custodian-${n}.share`)])], { FLEETPKI_CONFIG: h.files.b, FLEETPKI_TOKEN: custodian });
  assert.equal(restored.code, 0, restored.output);
  await registerSyntheticManufacturer(pool, { site: 'a', id: 'inst-meters', name: 'Installed Meters', actor: 'test' });
  factoryToken = await issueApiToken(pool, { site: 'a', actor: 'test', name: 'installed-factory', role: 'factory', manufacturerId: 'inst-meters', expiresDays: 1 });
  for (const site of ['a', 'b'] as const) for (const name of SITE_SERVICES) start(name, site);
  const https = new InternalHttps(config);
  await waitForHttp(`${config.sites.a.apiUrl}/readyz`, 120_000, { https, part: 'api' });
  for (const site of ['a', 'b'] as const) await waitForHttp(`${config.sites[site].statusUrl}/healthz`, 120_000, { https, part: 'status' });
});

after(async () => {
  if (skip) return;
  await Promise.all(children.map(stopProcess));
  await pool?.end();
  await tearDown(dir, install!);
});


describe('the installed layout on three hosts (network namespaces)', { skip }, () => {
  it('every link is secured: PostgreSQL and its replication over TLS with scram, Redis TLS-only, etcd https; the parts listen on their own hosts', async () => {
    const { rows } = await pool.query<{ ssl: boolean; replication: boolean }>(`SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl, coalesce((SELECT bool_and(s.ssl) FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid), false) AS replication`);
    assert.deepEqual(rows[0], { ssl: true, replication: true }, 'this client and B\'s replication are over TLS');
    for (const member of config.consensus.members) assert.match(member.clientUrl, new RegExp(`^https://${member.host.replace(/\./g, '\\.')}:`));
    // Nothing of the deployment on loopback: each part on its host's address.
    const listening = execFileSync('ip', ['netns', 'exec', config.sites.a.netns!, 'ss', '-Hltn'], { encoding: 'utf8' });
    assert.doesNotMatch(listening, /127\.0\.0\.1:(5432|6379|8443|9443|2379|2380)\b/);
    assert.match(listening, /10\.78\.0\.1:5432/);
    // Redis answers nothing in plaintext.
    const plain = await new Promise<string>((resolve) => {
      let got = '';
      const socket = connect(6379, HOSTS.a, () => socket.write('PING\r\n'));
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('error', () => resolve(got));
      socket.on('close', () => resolve(got));
      setTimeout(() => socket.destroy(), 2_000);
    });
    assert.doesNotMatch(plain, /PONG/);
    // The witness's own file resolves to the same deployment (it differs only in `this:`).
    const witness = await installedCli(install!, ['config', 'check', '--file', h.files.witness], {});
    assert.equal(witness.code, 0, witness.output);
  });

  it('an enrolment over HTTPS on A gives a certificate that openssl verifies; B\'s status responder answers OCSP for it over https', async () => {
    assert.match(config.sites.a.apiUrl, /^https:\/\/10\.78\.0\.1:/);
    const factory = FleetApiClient.forSite(config, 'a', factoryToken);
    const [key] = generateDeviceKeys(1);
    const enrolled = await factory.enrol({ eui64: syntheticEui64('inst-meters'), keyRole: 'digitalSignature', csr: key!.csr.toString('base64'), format: 'pem' });
    const certFile = join(h.dir, 'enrolled.pem');
    writeFileSync(certFile, enrolled.certificate.startsWith('-----BEGIN') ? enrolled.certificate : toPem(Buffer.from(enrolled.certificate, 'base64')));
    assert.match(execFileSync('openssl', ['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, certFile], { encoding: 'utf8' }), /: OK/);
    const asker = await OcspAsker.forIssuingCa(pool);
    const certId = asker.certId(Buffer.from(enrolled.serial, 'hex'));
    const { buildOcspRequest } = await import('@fleetpki/ca');
    const https = new InternalHttps(config);
    assert.match(config.sites.b.statusUrl, /^https:\/\/10\.78\.0\.2:/);
    // B vouches once it has replayed what A acknowledged (synchronous replication: at once, or a tryLater first).
    const verdict = await waitFor('B answers good', async () => {
      const answer = await https.request('status', `${config.sites.b.statusUrl}/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: buildOcspRequest(certId), timeoutMs: 10_000 });
      assert.equal(answer.status, 200);
      const v = verdictOf(answer.body, certId);
      return v === 'good' ? v : undefined;
    }, 30_000, 250);
    assert.equal(verdict, 'good');
  });
});

/** A variant of host A's file, for a refusal: `change` edits a copy of the document. */
interface HostDoc {
  secrets: { postgres: Record<string, string>; redis: string };
  tls: Record<string, unknown> & { caBundle: string };
}
function variant(name: string, change: (doc: HostDoc) => void): string {
  const doc = structuredClone(h.doc) as unknown as HostDoc;
  change(doc);
  return writeHostFile(join(h.dir, 'hosts', `a-${name}.yaml`), doc as unknown as Record<string, unknown>, 'a');
}

function wrongSecret(name: string): string {
  const file = join(h.dir, 'secrets', `wrong-${name}`);
  writeFileSync(file, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
  return file;
}

describe('a part given a wrong certificate or password stops at start, saying why', { skip }, () => {
  const refused = (exit: { code: number | null; output: string }, service: string, code: string) => {
    assert.equal(exit.code, 1, `${service} exited (output: ${exit.output})`);
    assert.match(exit.output, new RegExp(`${service}: ${code}: `), exit.output);
  };

  it('a wrong PostgreSQL password: DB_AUTH_FAILED', async () => {
    const file = variant('pg-password', (d) => (d.secrets.postgres.issuer = wrongSecret('pg-issuer')));
    refused(await startAndWaitForExit(h, 'issuer-api', file), 'issuer-api', 'DB_AUTH_FAILED');
  });

  it('a wrong Redis password: REDIS_AUTH_FAILED', async () => {
    const file = variant('redis-password', (d) => (d.secrets.redis = wrongSecret('redis')));
    refused(await startAndWaitForExit(h, 'batch-worker', file), 'batch-worker', 'REDIS_AUTH_FAILED');
  });

  it("an etcd client certificate from another CA: ETCD_TLS_REFUSED", async () => {
    const other = makeTestTlsCa('another CA', join(h.dir, 'other-ca-etcd'));
    const pair = other.client('etcd-client', 'installed-intruder');
    const file = variant('etcd-client', (d) => (d.tls.etcdClient = pair));
    refused(await startAndWaitForExit(h, 'status-responder', file), 'status-responder', 'ETCD_TLS_REFUSED');
  });

  it("a CA bundle that does not vouch for PostgreSQL's certificate: DB_TLS_UNTRUSTED", async () => {
    const other = makeTestTlsCa('another CA', join(h.dir, 'other-ca-pg'));
    const file = variant('pg-bundle', (d) => (d.tls.caBundle = other.caPem));
    // The status responder opens its database first (then etcd): the bundle is named for PostgreSQL's link.
    refused(await startAndWaitForExit(h, 'status-responder', file), 'status-responder', 'DB_TLS_UNTRUSTED');
  });

  it('an API client whose bundle does not vouch for the API: API_TLS_UNTRUSTED', async () => {
    const other = makeTestTlsCa('another CA', join(h.dir, 'other-ca-api'));
    const bundle = join(h.dir, 'other-bundle.pem');
    copyFileSync(other.caPem, bundle);
    const file = variant('api-bundle', (d) => (d.tls.caBundle = bundle));
    const r = await installedCli(install!, ['batch', 'status', '00000000-0000-4000-8000-000000000000'], { FLEETPKI_CONFIG: file, FLEETPKI_TOKEN: factoryToken });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /API_TLS_UNTRUSTED/, r.output);
  });
});

describe('a partition between the hosts, on the installed layout', { skip }, () => {
  it('cut A off mid-batch: A stops before B promotes; after the link is back A is rewound into the standby; the batch completes, nothing duplicated or lost', async () => {
    try {
      await partitionMidBatch(config, pool, 'inst-partition');
    } catch (err) {
      (err as Error).message += `\n${agentLogTails(config)}`;
      throw err;
    }
  });
});

describe('a failover drill on the installed layout', { skip }, () => {
  it('the installed CLI kills the active site mid-batch; the agents and etcd fail over with RPO 0, nothing duplicated, OCSP answered throughout', async () => {
    // The drill starts both sites' services itself (and kills the active site's): ours make way.
    await Promise.all(children.splice(0).map(stopProcess));
    const { primary, standby } = currentRoles(config);
    // An operator on the active site's host, with its file.
    const run = await installedCli(install!, ['drill', 'failover', '--devices', '10000', '--json'], { FLEETPKI_CONFIG: h.files[primary.id] }, 400_000);
    assert.equal(run.code, 0, `${run.stderr.slice(0, 3000)}\n${run.stdout.slice(-2000)}\n${agentLogTails(config)}`);
    const r = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.deepEqual([r.from, r.to], [primary.id, standby.id]);
    assert.equal(r.rpo_lost, 0);
    assert.equal(r.duplicate_serials, 0);
    assert.equal(r.batch_complete, true);
    assert.equal(r.batch_devices_not_exactly_one, 0);
    const acks = r.enrolments_acknowledged as Record<string, number>;
    assert.ok(acks[primary.id]! > 0 && acks[standby.id]! > 0, 'enrolments acknowledged on both sides of the failover');
    assert.ok((r.ocsp_answered as number) > 0);
    assert.equal(r.ocsp_failed, 0, `the standby answered every OCSP request during the drill (failures: ${JSON.stringify(r.ocsp_failures)})`);
    assert.equal(readTopology(config).primary, standby.id);
  });
});
