import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { loadConfig, type FleetConfig } from '@fleetpki/core';
import { FleetApiClient } from '@fleetpki/client';
import { createIssuerRuntime, readTlsMaterial, type IssuerRuntime } from '@fleetpki/issuer-api';
import { findPersonByName, type Pool } from '@fleetpki/store';
import { PRIVILEGED_ROLES, type Role } from '@fleetpki/ca';
import { generateDeviceKeys } from '@fleetpki/x509';
import { syntheticEui64 } from '@fleetpki/manifest';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { approvedRequest } from './support/dual-control.js';
import { ensureSites } from './support/sites.js';

/** HTTPS with the organisation CA's server certificate, and client certificates standing for roles. */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let base: string;
let port: number;
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-tls-'));
const MAKER = 'tls-maker';
let adminFile: string;

/**
 * A client certificate for a new person, as administrators issue one: the person exists first; a
 * privileged one's certificate executes an approved credential.create (two administrators).
 */
async function clientCert(name: string, role: Role, manufacturer?: string): Promise<{ dir: string; serial: string }> {
  const out = join(dir, name);
  await createToken(pool, role, manufacturer ?? null, name);
  const person = (await findPersonByName(pool, name))!;
  const approval = PRIVILEGED_ROLES.includes(role) ? await approvedRequest(pool, ca, 'credential.create', 'administrator', { person: person.id, name }) : undefined;
  const adminFile = approval?.tokenFile ?? writeCaFile(ca, `tls-admin-${name}.token`, await createToken(pool, 'administrator', null, `tls-admin-${name}`));
  const r = await cli(['tls', 'client', '--name', name, '--out', out, '--token-file', adminFile, ...(approval ? ['--approval', approval.id] : [])]);
  assert.equal(r.code, 0, r.stderr);
  return { dir: out, serial: /client certificate ([0-9a-f]+)/.exec(r.stdout)![1]! };
}
const asClient = (c: { dir: string }, token?: string) => new FleetApiClient(base, token, { key: readFileSync(join(c.dir, 'client.key')), cert: readFileSync(join(c.dir, 'client.pem')), ca: readFileSync(join(c.dir, 'ca.pem')) });
const serverOnly = (token?: string) => new FleetApiClient(base, token, { ca: readFileSync(join(config.api.tlsDir, 'clients-ca.pem')) });

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  await createToken(pool, 'factory', MAKER, 'tls-factory-token');
  adminFile = writeCaFile(ca, 'tls-admin.token', await createToken(pool, 'administrator', null, 'tls-admin'));
  const server = await cli(['tls', 'server', '--token-file', adminFile]);
  assert.equal(server.code, 0, server.stderr);
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4, tls: readTlsMaterial(config.api.tlsDir) });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  port = (runtime.app.server.address() as AddressInfo).port;
  base = `https://127.0.0.1:${port}`;
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

describe('HTTPS and mutual TLS', () => {
  it('the server certificate chains to the root through the organisation CA (openssl verify) and the API answers over HTTPS with HSTS', async () => {
    const serverPem = readFileSync(join(config.api.tlsDir, 'server.pem'), 'utf8');
    const [leaf, org] = serverPem.split(/(?<=-----END CERTIFICATE-----\n)/);
    const leafPath = join(dir, 'server-leaf.pem');
    const orgPath = join(dir, 'org.pem');
    execFileSync('sh', ['-c', `cat > ${leafPath}`], { input: leaf });
    execFileSync('sh', ['-c', `cat > ${orgPath}`], { input: org });
    assert.match(execFileSync('openssl', ['verify', '-CAfile', ca.rootPem, '-untrusted', orgPath, '-purpose', 'sslserver', leafPath], { encoding: 'utf8' }), /: OK/);
    const res = await fetch(`${base}/healthz`).catch((err: Error) => err);
    assert.ok(res instanceof Error, 'a client that does not trust the organisation CA refuses the server');
    const chain = await serverOnly().ca();
    assert.match(chain, /BEGIN CERTIFICATE/);
  });

  it('a factory authenticates with its client certificate alone; its role and manufacturer scope apply', async () => {
    const line = await clientCert(`line-${randomBytes(3).toString('hex')}`, 'factory', MAKER);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', ca.rootPem, '-untrusted', join(line.dir, 'ca.pem'), '-purpose', 'sslclient', join(line.dir, 'client.pem')], { encoding: 'utf8' }), /: OK/);
    const client = asClient(line);
    const [key] = generateDeviceKeys(1);
    const enrolled = await client.enrol({ eui64: syntheticEui64(MAKER), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') });
    assert.ok(enrolled.serial);
    await assert.rejects(client.approvals(), { code: 'ROLE_FORBIDDEN' });
    const { rows } = await pool.query<{ actor: string }>(`SELECT actor FROM audit_events WHERE action = 'issuance.certificate' AND subject = $1 ORDER BY seq DESC LIMIT 1`, [enrolled.serial.toLowerCase()]);
    assert.match(rows[0]?.actor ?? '', /^person:line-[0-9a-f]+ via cert:[0-9a-f]+$/, 'the person and the credential they used');
    await client.close();
  });

  it('without a certificate a token still works; with neither the answer is 401', async () => {
    const token = await createToken(pool, 'auditor', null, `tls-auditor-${randomBytes(3).toString('hex')}`);
    assert.ok(Array.isArray(await serverOnly(token).approvals()));
    await assert.rejects(serverOnly().approvals(), { code: 'AUTH_REQUIRED' });
  });

  it('a certificate from another CA, and a revoked one, are refused', async () => {
    const foreign = join(dir, 'foreign');
    execFileSync('sh', ['-c', `mkdir -p ${foreign} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=intruder -days 1 -keyout ${foreign}/client.key -out ${foreign}/client.pem 2>/dev/null && cp ${join(config.api.tlsDir, 'clients-ca.pem')} ${foreign}/ca.pem`]);
    await assert.rejects(asClient({ dir: foreign }).approvals(), { code: 'CLIENT_CERT_INVALID' });
    const officer = await clientCert(`officer-${randomBytes(3).toString('hex')}`, 'revocation-officer');
    const revoked = await cli(['tls', 'revoke', officer.serial, '--token-file', adminFile]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await assert.rejects(asClient(officer).approvals(), { code: 'CLIENT_CERT_INVALID' });
  });

  it('openssl s_client completes the mutual handshake and verifies the server', async () => {
    const c = await clientCert(`s-client-${randomBytes(3).toString('hex')}`, 'auditor');
    const out = await new Promise<string>((resolve) => {
      const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', join(c.dir, 'ca.pem'), '-cert', join(c.dir, 'client.pem'), '-key', join(c.dir, 'client.key'), '-verify_return_error', '-brief'], { encoding: 'utf8', timeout: 20_000 }, (_err, stdout, stderr) => resolve(stdout + stderr));
      child.stdin?.end('GET /healthz HTTP/1.0\r\n\r\n');
    });
    assert.match(out, /Verification: OK/);
  });

  it('plain HTTP off loopback is refused at start-up', () => {
    assert.throws(() => loadConfig({ ...process.env, FLEETPKI_API_HOST: '0.0.0.0', FLEETPKI_API_TLS: 'off' }), { code: 'CONFIG_INVALID' });
    assert.equal(loadConfig({ ...process.env, FLEETPKI_API_HOST: '0.0.0.0', FLEETPKI_API_TLS: 'on' }).api.tls, true);
  });
});
