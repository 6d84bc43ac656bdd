import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkEtcdTls, openConsensus } from '@fleetpki/consensus';
import type { FleetConfig } from '@fleetpki/core';
import { ensureEtcd, ensurePrimary, etcdLogFile, ownerPool, pgBinDir, stopCluster, stopEtcd } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { freePort } from '../scripts/lib/free-port.js';
import { cli, type CliResult } from './support/cli.js';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { etcdTlsConfig, etcdTlsMembers } from './support/etcd-tls.js';
import { pgTlsConfig, writeSecret, type PgTlsFixture } from './support/postgres-tls.js';
import { makeTestTlsCa } from './support/tls-material.js';
import { ensureSites } from './support/sites.js';

/**
 * `fleetpki tls internal` (issue 34): the deployment's own TLS pairs from the organisation CA, run as an
 * operator runs it, against the real database and HSM, checked with openssl, then used: a PostgreSQL
 * and a three-member etcd cluster of their own serve and verify TLS with nothing but what the CLI wrote.
 */
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-tls-internal-'));
// The throw-away PostgreSQL runs as the postgres OS user, which must reach its folder.
chmodSync(dir, 0o755);
const conf = join(dir, 'conf');
const out = join(dir, 'out');
const out2 = join(dir, 'out2');
const file = (name: string) => join(conf, name);
let config: FleetConfig;
let pool: Pool;
let env: NodeJS.ProcessEnv;
let adminFile: string;
let rootPem: string;
let pgConfig: FleetConfig | undefined;
let etcdConfig: FleetConfig | undefined;

interface Listed { serial: string; part: string; host: string; names: string[]; state: string; supersededBy: string | null; revoked: boolean; due: boolean; daysLeft: number }

const run = (args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> => cli(['tls', 'internal', ...args], { ...env, ...extra });
const asAdmin = (args: readonly string[]) => run([...args, '--token-file', adminFile]);

function refused(r: CliResult, code: string): string {
  assert.equal(r.code, 1, `refused: ${r.stdout}`);
  assert.match(r.stderr, new RegExp(`^fleetpki: ${code}: `, 'm'));
  return r.stderr;
}

async function listed(withinDays = 30): Promise<Listed[]> {
  const r = await run(['list', '--json', '--within-days', String(withinDays)]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Listed[]).filter((c) => c.host === 'a');
}
/** Straight from the database, where a CLI process per look would only add load: the host's current serials by part. */
async function currentSerials(): Promise<Record<string, string>> {
  const { rows } = await pool.query<{ tls_part: string; serial: string }>(`SELECT tls_part, encode(serial, 'hex') AS serial FROM organisation_certificates WHERE tls_host = 'a' AND superseded_at IS NULL`);
  return Object.fromEntries(rows.map((r) => [r.tls_part, r.serial]));
}

const serialOf = (pem: string) => new X509Certificate(readFileSync(pem)).serialNumber.toLowerCase().replace(/^0+/, '');
const hex = (serial: string) => serial.replace(/^0+/, '');

/** The leaf (first certificate of the file), verified by openssl against the bundle only; its text. */
function opensslChecks(pem: string, bundle: string, purpose: 'sslserver' | 'sslclient'): string {
  const leaf = join(dir, `leaf-${randomBytes(4).toString('hex')}.pem`);
  writeFileSync(leaf, readFileSync(pem, 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
  assert.match(execFileSync('openssl', ['verify', '-CAfile', bundle, '-purpose', purpose, leaf], { encoding: 'utf8' }), /: OK/);
  return execFileSync('openssl', ['x509', '-noout', '-text', '-in', leaf], { encoding: 'utf8' });
}
const ekuOf = (text: string) => /X509v3 Extended Key Usage:\s*\n\s*(.+)/.exec(text)?.[1]?.trim();

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  rootPem = (await ensureCa(config, pool)).rootPem;
  adminFile = join(dir, 'admin.token');
  writeFileSync(adminFile, await createToken(pool, 'administrator', null, `tls-internal-admin-${randomBytes(3).toString('hex')}`), { mode: 0o600 });
  // The host's file as an operator writes it: etcd's pairs as files, the status key a systemd credential,
  // the bundle not there yet. JSON is YAML. PostgreSQL's pair is not named: naming it would put the CLI's
  // own link to the suite's plaintext database on TLS (first installation: issue it to --out, then name it).
  const yaml = join(dir, 'fleetpki.yaml');
  // etcd over TLS means https members (the CLI reaches none of them here: the shared sites' stay http).
  const members = Object.fromEntries(config.consensus.members.map((m) => [m.name, { clientUrl: m.clientUrl.replace(/^http:/, 'https:'), peerUrl: m.peerUrl.replace(/^http:/, 'https:') }]));
  writeFileSync(yaml, JSON.stringify({ etcd: { members }, tls: {
    caBundle: file('ca.pem'),
    etcd: { cert: file('etcd.pem'), key: file('etcd.key') },
    etcdPeer: { cert: file('etcd-peer.pem'), key: `file:${file('etcd-peer.key')}` },
    etcdClient: { cert: file('etcd-client.pem'), key: file('etcd-client.key') },
    status: { cert: file('status.pem'), key: 'credential:status-tls-key' },
  } }));
  env = { FLEETPKI_CONFIG: yaml, CREDENTIALS_DIRECTORY: join(dir, 'credentials') };
});

after(async () => {
  if (etcdConfig) await stopEtcd(etcdConfig);
  if (pgConfig) await stopCluster(pgConfig.sites.a, 'immediate').catch(() => undefined);
  await pool?.end();
  rmSync(dir, { recursive: true, force: true });
});

describe('fleetpki tls internal issue', () => {
  it('refuses bad input and unwritable destinations with stable codes, before anything is recorded', async () => {
    const before = await currentSerials();
    // One process each (the other refusals of bad input are packages/ca's unit tests: internal-tls.test.ts).
    refused(await asAdmin(['issue', '--part', 'mysql', '--names', 'db']), 'INTERNAL_TLS_PART_UNKNOWN');
    refused(await asAdmin(['issue', '--part', 'etcd']), 'INTERNAL_TLS_NAMES_REQUIRED');
    refused(await asAdmin(['issue', '--part', 'etcd', '--names', '127.0.0.1', '--days', '1000']), 'INTERNAL_TLS_DAYS_INVALID');
    assert.match(refused(await asAdmin(['issue', '--part', 'status', '--names', '127.0.0.1']), 'INTERNAL_TLS_OUT_REQUIRED'), /systemd credential "status-tls-key"/);
    assert.match(refused(await asAdmin(['issue', '--part', 'postgres', '--names', '127.0.0.1']), 'INTERNAL_TLS_OUT_REQUIRED'), /tls\.postgres is not in the configuration/);
    const auditor = join(dir, 'auditor.token');
    writeFileSync(auditor, await createToken(pool, 'auditor', null, `tls-internal-auditor-${randomBytes(3).toString('hex')}`));
    refused(await run(['issue', '--part', 'etcdClient', '--token-file', auditor]), 'ROLE_FORBIDDEN');
    assert.deepEqual(await currentSerials(), before, 'nothing was issued');
  });

  it("issues etcd's pairs into the configured files with the CA bundle; openssl verifies them, each with its part's EKUs", async () => {
    const [etcd, peer, client] = [await asAdmin(['issue', '--part', 'etcd', '--names', '127.0.0.1,localhost']), await asAdmin(['issue', '--part', 'etcdPeer', '--names', '127.0.0.1,localhost']), await asAdmin(['issue', '--part', 'etcdClient', '--days', '20'])];
    for (const r of [etcd, peer, client]) assert.equal(r.code, 0, r.stderr);
    assert.match(etcd.stdout, /CA bundle .*ca\.pem: written/);
    assert.match(client.stdout, /CA bundle .*ca\.pem: already holds the organisation CA and the root/);
    assert.match(etcd.stdout, /restart .*fleetpki-etcd \(one member at a time/);
    assert.match(client.stdout, /restart .*fleetpki-issuer-api/);
    const bundle = readFileSync(file('ca.pem'), 'utf8');
    assert.ok(bundle.includes(readFileSync(rootPem, 'utf8').trim()), 'the bundle holds the root (and the organisation CA before it)');
    assert.equal((bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    for (const key of ['etcd.key', 'etcd-peer.key', 'etcd-client.key']) assert.equal(statSync(file(key)).mode & 0o777, 0o600, key);
    const etcdText = opensslChecks(file('etcd.pem'), file('ca.pem'), 'sslserver');
    assert.equal(ekuOf(etcdText), 'TLS Web Server Authentication, TLS Web Client Authentication');
    assert.match(etcdText, /IP Address:127\.0\.0\.1, DNS:localhost|DNS:localhost, IP Address:127\.0\.0\.1/);
    opensslChecks(file('etcd-peer.pem'), file('ca.pem'), 'sslclient');
    const clientText = opensslChecks(file('etcd-client.pem'), file('ca.pem'), 'sslclient');
    assert.equal(ekuOf(clientText), 'TLS Web Client Authentication');
    assert.doesNotMatch(clientText, /Subject Alternative Name/);
    assert.doesNotMatch(clientText, /CN\s*=\s*(root|operator|service|agent-[ab])\b/, 'the CN names no etcd user');
    const serial = serialOf(file('etcd-client.pem'));
    const { rows } = await pool.query<{ actor: string; details: Record<string, unknown> }>(`SELECT actor, details FROM audit_events WHERE action = 'org-certificate.issue' AND ltrim(subject, '0') = $1`, [serial]);
    assert.match(rows[0]!.actor, /^person:tls-internal-admin-/);
    assert.deepEqual([rows[0]!.details.purpose, rows[0]!.details.part, rows[0]!.details.host], ['internal-client', 'etcdClient', 'a']);
  });

  it('writes a pair whose key is a credential, or a part not configured, to --out and says what goes where', async () => {
    const status = await asAdmin(['issue', '--part', 'status', '--names', '127.0.0.1', '--out', out]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /LoadCredential=status-tls-key:/);
    assert.match(status.stdout, new RegExp(`install -m 0644 ${join(out, 'status.pem')} ${file('status.pem')}`));
    const postgres = await asAdmin(['issue', '--part', 'postgres', '--names', '127.0.0.1', '--out', out]);
    assert.equal(postgres.code, 0, postgres.stderr);
    assert.match(postgres.stdout, /tls: \{ postgres: \{ cert: .*postgres\.pem, key: .*postgres\.key \} \}/);
    assert.equal(statSync(out).mode & 0o777, 0o700, '--out holds keys');
    assert.equal(ekuOf(opensslChecks(join(out, 'postgres.pem'), join(out, 'ca.pem'), 'sslserver')), 'TLS Web Server Authentication', 'PostgreSQL serves only');
  });
});

describe('fleetpki tls internal list and rotate', () => {
  it('lists the due ones; rotate re-issues exactly those into the same files, supersedes without revoking, and a second run issues nothing', async () => {
    const before = await listed();
    const old = before.find((c) => c.part === 'etcdClient' && c.state === 'current')!;
    assert.deepEqual(before.filter((c) => c.due).map((c) => c.part), ['etcdClient'], 'only the 20-day certificate is due within 30 days');
    assert.ok(old.daysLeft >= 19 && old.daysLeft <= 20);
    assert.match((await run(['list'])).stdout, new RegExp(`a\\s+etcdClient\\s+${old.serial}\\s+current\\s+\\S+\\s+\\d+\\s+ROTATE`));
    const oldKey = readFileSync(file('etcd-client.key'), 'utf8');
    const rotated = await asAdmin(['rotate', '--days', '90']);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal((rotated.stdout.match(/^issued /gm) ?? []).length, 1, rotated.stdout);
    assert.match(rotated.stdout, new RegExp(`superseded, not revoked .*${old.serial}`));
    const afterRotation = await listed();
    const now = afterRotation.find((c) => c.part === 'etcdClient' && c.state === 'current')!;
    assert.notEqual(now.serial, old.serial);
    assert.deepEqual([now.due, now.daysLeft >= 89], [false, true]);
    assert.equal(serialOf(file('etcd-client.pem')), hex(now.serial), 'the configured file holds the new certificate');
    assert.notEqual(readFileSync(file('etcd-client.key'), 'utf8'), oldKey, 'with a new key');
    assert.equal(statSync(file('etcd-client.key')).mode & 0o777, 0o600);
    opensslChecks(file('etcd-client.pem'), file('ca.pem'), 'sslclient');
    const was = afterRotation.find((c) => c.serial === old.serial)!;
    assert.deepEqual([was.state, was.supersededBy, was.revoked], ['superseded', now.serial, false]);
    const again = await asAdmin(['rotate']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^nothing to rotate/);
    assert.equal((await currentSerials()).etcdClient, now.serial);
  });

  it('with a large window every current certificate is due; parts that need --out stop the rotation before it starts', async () => {
    const before = (await listed()).filter((c) => c.state === 'current');
    assert.ok(before.length >= 5);
    const stopped = refused(await asAdmin(['rotate', '--within-days', '100000']), 'INTERNAL_TLS_OUT_REQUIRED');
    assert.match(stopped, /nothing was rotated.*postgres: tls\.postgres is not in the configuration/);
    assert.match(stopped, /status: tls\.status\.key is the systemd credential/);
    assert.deepEqual(Object.values(await currentSerials()).sort(), before.map((c) => c.serial).sort(), 'nothing was rotated');
    const all = await asAdmin(['rotate', '--within-days', '100000', '--out', out2]);
    assert.equal(all.code, 0, all.stderr);
    const after = await listed();
    for (const was of before) {
      const replaced = after.find((c) => c.serial === was.serial)!;
      assert.equal(replaced.state, 'superseded', `${was.part} rotated`);
      const now = after.find((c) => c.serial === replaced.supersededBy)!;
      assert.deepEqual([now.part, now.state, now.names], [was.part, 'current', was.names], `${was.part}: the same names`);
    }
    assert.equal(serialOf(join(out2, 'postgres.pem')), hex(after.find((c) => c.part === 'postgres' && c.state === 'current')!.serial));
  });
});

function psql(conninfo: string, password: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(pgBinDir(), 'psql'), [conninfo, '-Atc', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], { env: { ...process.env, PGPASSWORD: password }, timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
}

describe('the links, with nothing but what the CLI wrote', () => {
  it('PostgreSQL serves TLS with the issued pair; clients verify it against the issued bundle (verify-full)', async () => {
    const fixture: PgTlsFixture = { dir: join(dir, 'pg'), caBundle: join(out2, 'ca.pem'), cert: join(out2, 'postgres.pem'), key: join(out2, 'postgres.key'), ports: { a: await freePort(), b: await freePort() }, passwords: {} };
    for (const role of ['owner', 'issuer', 'worker', 'status', 'operator'] as const) fixture.passwords[role] = writeSecret(dir, `${role}.pw`, randomBytes(18).toString('base64url'));
    pgConfig = pgTlsConfig(fixture);
    await ensurePrimary(pgConfig, pgConfig.sites.a, undefined);
    const owner = ownerPool(pgConfig, pgConfig.sites.a, 'postgres', { max: 1 });
    try {
      const { rows } = await owner.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      assert.equal(rows[0]!.ssl, true);
    } finally {
      await owner.end();
    }
    const password = readFileSync(fixture.passwords.owner!, 'utf8').trim();
    const conninfo = `host=127.0.0.1 port=${fixture.ports.a} dbname=postgres user=${pgConfig.pgUser} sslmode=verify-full`;
    const verified = await psql(`${conninfo} sslrootcert=${fixture.caBundle}`, password);
    assert.deepEqual([verified.code, verified.stdout.trim()], [0, 't'], verified.stderr);
    // The same server refused by a client that trusts another CA: the check is real.
    const otherRoot = await psql(`${conninfo} sslrootcert=${makeTestTlsCa('another CA', join(dir, 'other-ca')).caPem}`, password);
    assert.notEqual(otherRoot.code, 0);
    assert.match(otherRoot.stderr, /certificate verify failed/);
  });

  it('etcd forms a three-member cluster over peer TLS, serves clients with the client pair, and its JSON gateway works (clientAuth on the server pair)', async () => {
    const pair = (part: string) => `{ cert: ${join(out2, `${part}.pem`)}, key: ${join(out2, `${part}.key`)} }`;
    mkdirSync(join(dir, 'etcd'));
    etcdConfig = etcdTlsConfig(join(dir, 'etcd'), `etcd:\n  ${await etcdTlsMembers()}\ntls:\n  caBundle: ${join(out2, 'ca.pem')}\n  etcd: ${pair('etcd')}\n  etcdPeer: ${pair('etcdPeer')}\n  etcdClient: ${pair('etcdClient')}\n`);
    await ensureEtcd(etcdConfig);
    await checkEtcdTls(etcdConfig);
    const operator = openConsensus(etcdConfig, 'operator');
    const key = `${etcdConfig.consensus.prefix}orders/tls-internal-probe`;
    try {
      await operator.put(key).value('issued by fleetpki');
      assert.equal(await operator.get(key).string(), 'issued by fleetpki');
    } finally {
      operator.close();
    }
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request(`${etcdConfig!.consensus.members[0]!.clientUrl}/v3/kv/range`, { method: 'POST', ca: readFileSync(join(out2, 'ca.pem')), cert: readFileSync(join(out2, 'etcdClient.pem')), key: readFileSync(join(out2, 'etcdClient.key')), timeout: 10_000 }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ key: Buffer.from(key).toString('base64') }));
    });
    // The gateway reached etcd (which then asks who is calling); with serverAuth alone it could not dial it.
    assert.doesNotMatch(answer, /connection closed/, answer);
    assert.doesNotMatch(readFileSync(etcdLogFile(etcdConfig.consensus.members[0]!), 'utf8'), /incompatible key usage/);
  });
});
