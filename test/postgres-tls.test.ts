import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isFleetError, type FleetConfig } from '@fleetpki/core';
import { ensurePrimary, ensureStandby, ownerPool, pgBinDir, standbyName, stopCluster } from '@fleetpki/sites';
import { createPool, migrate, openServicePool, readPgPassword } from '@fleetpki/store';
import { freePort } from '../scripts/lib/free-port.js';
import { makeTestTlsCa } from './support/tls-material.js';
import { pgTlsConfig, writeSecret, type PgTlsFixture } from './support/postgres-tls.js';

/**
 * PostgreSQL with TLS and scram-sha-256 (issue 34), on throw-away clusters of their own (own folder,
 * own free ports) started by the same packages/sites functions as `sites up`: the shared test sites
 * stay on loopback without TLS. The attacks come first: a client in plaintext, with a wrong password,
 * or trusting another CA is refused, and a service so configured stops at start with a clear error.
 * Attack test: not run again on the secure simulation: it starts parts of its own with TLS and authentication on.
 */
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-pg-tls-'));
// The clusters run as the postgres OS user, which must reach their folders.
chmodSync(dir, 0o755);
let fixture: PgTlsFixture;
let config: FleetConfig;

before(async () => {
  const ca = makeTestTlsCa();
  const server = ca.server('postgres', ['127.0.0.1']);
  fixture = { dir, caBundle: ca.caPem, cert: server.cert, key: server.key, ports: { a: await freePort(), b: await freePort() }, passwords: {} };
  for (const role of ['owner', 'issuer', 'worker', 'status', 'operator'] as const) fixture.passwords[role] = writeSecret(dir, `${role}.pw`, randomBytes(18).toString('base64url'));
  config = pgTlsConfig(fixture);
  await ensurePrimary(config, config.sites.a, undefined);
  const pool = ownerPool(config, config.sites.a, config.pgDatabase, { max: 1 });
  try {
    await migrate(pool, join(config.repoRoot, 'migrations'));
  } finally {
    await pool.end();
  }
});

after(async () => {
  if (config) for (const site of [config.sites.b, config.sites.a]) await stopCluster(site, 'immediate').catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

function psql(conninfo: string, env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(pgBinDir(), 'psql'), [conninfo, '-Atc', 'SELECT 1'], { env: { ...process.env, ...env }, timeout: 30_000 }, (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }));
  });
}

describe('PostgreSQL with TLS and scram-sha-256', () => {
  it('a service role connects over TLS with its password and keeps its least privilege', async () => {
    const pool = await openServicePool(config, 'status', 1);
    try {
      const { rows } = await pool.query<{ ssl: boolean; version: string; user: string }>('SELECT ssl, version, current_user AS user FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      assert.deepEqual({ ssl: rows[0]!.ssl, user: rows[0]!.user }, { ssl: true, user: 'fleetpki_status' });
      assert.match(rows[0]!.version, /^TLSv1\.[23]$/);
      await assert.rejects(pool.query(`INSERT INTO certificates (serial) VALUES ('00')`), (err: { code?: string }) => err.code === '42501');
    } finally {
      await pool.end();
    }
  });

  it('the stored password is a SCRAM verifier, not the password', async () => {
    const pool = ownerPool(config, config.sites.a, 'postgres', { max: 1 });
    try {
      const { rows } = await pool.query<{ rolname: string; rolpassword: string | null }>(`SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin ORDER BY 1`);
      const withPassword = rows.filter((r) => r.rolpassword !== null);
      assert.deepEqual(withPassword.map((r) => r.rolname), ['fleetpki', 'fleetpki_issuer', 'fleetpki_operator', 'fleetpki_status', 'fleetpki_worker']);
      for (const r of withPassword) assert.match(r.rolpassword!, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
      // Any other login role (0013's fleetpki_service, left by 0016 without grants) has no password, so scram refuses it.
      for (const r of rows.filter((row) => row.rolpassword === null)) assert.ok(!['fleetpki', 'fleetpki_issuer', 'fleetpki_operator', 'fleetpki_status', 'fleetpki_worker'].includes(r.rolname));
    } finally {
      await pool.end();
    }
  });

  it('the server refuses a client in plaintext, even with the right password', async () => {
    const pool = createPool(config.sites.a.serviceDatabaseUrls.status, { max: 1 });
    const password = readPgPassword(fixture.passwords.status!);
    const plain = createPool(config.sites.a.serviceDatabaseUrls.status.replace('fleetpki_status@', `fleetpki_status:${password}@`), { max: 1 });
    try {
      for (const p of [pool, plain]) {
        await assert.rejects(p.query('SELECT 1'), (err: { code?: string; message: string }) => err.code === '28000' && /no encryption/.test(err.message));
      }
    } finally {
      await pool.end();
      await plain.end();
    }
  });

  it('psql with sslmode=disable is refused by the server', async () => {
    const out = await psql(`host=127.0.0.1 port=${fixture.ports.a} dbname=${config.pgDatabase} user=fleetpki_status sslmode=disable`, { PGPASSWORD: readPgPassword(fixture.passwords.status!) });
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /no encryption/);
    const good = await psql(`host=127.0.0.1 port=${fixture.ports.a} dbname=${config.pgDatabase} user=fleetpki_status sslmode=verify-full sslrootcert=${fixture.caBundle}`, { PGPASSWORD: readPgPassword(fixture.passwords.status!) });
    assert.equal(good.code, 0, good.stderr);
  });

  it('a service with a wrong password stops at start with DB_AUTH_FAILED naming role and host:port, never the password', async () => {
    const wrong = randomBytes(12).toString('hex');
    const wrongConfig = pgTlsConfig({ ...fixture, passwords: { ...fixture.passwords, status: writeSecret(dir, 'wrong.pw', wrong) } });
    await assert.rejects(openServicePool(wrongConfig, 'status', 1), (err: unknown) => {
      assert.ok(isFleetError(err) && err.code === 'DB_AUTH_FAILED', String(err));
      assert.ok(err.message.includes(`127.0.0.1:${fixture.ports.a}`) && err.message.includes('fleetpki_status'), err.message);
      assert.ok(!err.message.includes(wrong) && !JSON.stringify(err.toJSON()).includes(wrong));
      return true;
    });
  });

  it('a service that trusts another CA refuses the server before sending its password: DB_TLS_UNTRUSTED', async () => {
    const otherCa = makeTestTlsCa('another CA');
    const wrongConfig = pgTlsConfig({ ...fixture, caBundle: otherCa.caPem });
    await assert.rejects(openServicePool(wrongConfig, 'issuer', 1), (err: unknown) => {
      assert.ok(isFleetError(err) && err.code === 'DB_TLS_UNTRUSTED', String(err));
      assert.ok(err.message.includes(`127.0.0.1:${fixture.ports.a}`) && err.message.includes(otherCa.caPem), err.message);
      return true;
    });
    rmSync(otherCa.dir, { recursive: true, force: true });
  });

  it('a server certificate for another host name is refused (verify-full)', async () => {
    // Same CA, but the certificate names db.example.net, not the address dialled.
    const ca2 = makeTestTlsCa('host check CA');
    const otherHost = ca2.server('postgres-other', ['db.example.net']);
    const hostConfig = pgTlsConfig({ ...fixture, caBundle: ca2.caPem, cert: otherHost.cert, key: otherHost.key, ports: { a: await freePort(), b: await freePort() }, dir: join(dir, 'host-check') });
    try {
      await assert.rejects(ensurePrimary(hostConfig, hostConfig.sites.a, undefined), (err: unknown) => {
        assert.ok(isFleetError(err) && err.code === 'DB_TLS_UNTRUSTED', String(err));
        assert.match(err.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
        return true;
      });
    } finally {
      await stopCluster(hostConfig.sites.a, 'immediate').catch(() => undefined);
    }
  });

  it('the standby streams from the primary over TLS, authenticated by password', async () => {
    await ensureStandby(config, config.sites.b, config.sites.a);
    const pool = ownerPool(config, config.sites.a, 'postgres', { max: 1 });
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { rows } = await pool.query<{ state: string; ssl: boolean }>('SELECT r.state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = $1', [standbyName(config.sites.b)]);
        if (rows[0]?.state === 'streaming') {
          assert.equal(rows[0].ssl, true);
          break;
        }
        assert.ok(Date.now() < deadline, `standby not streaming: ${JSON.stringify(rows)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await pool.end();
    }
  });
});
