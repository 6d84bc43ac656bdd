import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FleetApiClient } from '@fleetpki/client';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, readTlsMaterial, type IssuerRuntime } from '@fleetpki/issuer-api';
import type { Pool } from '@fleetpki/store';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool, writeCaFile } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * The attack (issue 34): an internal TLS certificate chains to the organisation CA, as a person's client
 * certificate does, and the etcd pairs carry clientAuth. Whoever takes one from a host (etcd's peer key,
 * the host's etcd client key) presents it to the issuer API's mTLS: it must stand for nobody. The pairs
 * are the witness host's, issued to --out, so this file leaves site A's internal pairs alone.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let runtime: IssuerRuntime;
let base: string;
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-tls-internal-api-'));
let adminFile: string;

async function internalPair(part: string, names?: string): Promise<{ dir: string; serial: string }> {
  const out = join(dir, part);
  const r = await cli(['tls', 'internal', 'issue', '--part', part, '--host', 'witness', '--out', out, '--token-file', adminFile, ...(names ? ['--names', names] : [])]);
  assert.equal(r.code, 0, r.stderr);
  return { dir: out, serial: /^issued ([0-9a-f]+)/.exec(r.stdout)![1]! };
}

const presenting = (pair: { cert: string; key: string }) => new FleetApiClient(base, undefined, { cert: readFileSync(pair.cert), key: readFileSync(pair.key), ca: readFileSync(join(config.api.tlsDir, 'clients-ca.pem')) });

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  const ca = await ensureCa(config, pool);
  adminFile = writeCaFile(ca, 'tls-internal-api-admin.token', await createToken(pool, 'administrator', null, `tls-internal-api-admin-${randomBytes(3).toString('hex')}`));
  const server = await cli(['tls', 'server', '--token-file', adminFile]);
  assert.equal(server.code, 0, server.stderr);
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4, tls: readTlsMaterial(config.api.tlsDir) });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  base = `https://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`;
});

after(async () => {
  await runtime?.close();
  await pool?.end();
  rmSync(dir, { recursive: true, force: true });
});

describe("the issuer API's mTLS refuses internal TLS certificates", () => {
  it("a person's client certificate from the same CA is admitted (the control: the set-up can admit)", async () => {
    const name = `tls-internal-factory-${randomBytes(3).toString('hex')}`;
    await createToken(pool, 'factory', 'tls-internal-maker', name);
    const out = join(dir, 'person');
    const issued = await cli(['tls', 'client', '--name', name, '--out', out, '--token-file', adminFile]);
    assert.equal(issued.code, 0, issued.stderr);
    const client = presenting({ cert: join(out, 'client.pem'), key: join(out, 'client.key') });
    // Authenticated as the factory it stands for, which may not read approvals.
    await assert.rejects(client.approvals(), { code: 'ROLE_FORBIDDEN' });
    await client.close();
  });

  for (const [part, names] of [['etcdClient', undefined], ['etcdPeer', '127.0.0.1']] as const) {
    it(`the ${part} pair (clientAuth, chains to the organisation CA) stands for nobody: CLIENT_CERT_INTERNAL, audited`, async () => {
      const pair = await internalPair(part, names);
      const client = presenting({ cert: join(pair.dir, `${part}.pem`), key: join(pair.dir, `${part}.key`) });
      await assert.rejects(client.approvals(), (err: { code?: string; message?: string }) => {
        assert.equal(err.code, 'CLIENT_CERT_INTERNAL', String(err.message));
        assert.match(err.message ?? '', new RegExp(`internal TLS certificate of ${part} \\(host witness\\)`));
        return true;
      });
      await client.close();
      const { rows } = await pool.query<{ details: Record<string, unknown> }>(`SELECT details FROM audit_events WHERE action = 'auth.failed' ORDER BY seq DESC LIMIT 1`);
      assert.equal(rows[0]?.details.code, 'CLIENT_CERT_INTERNAL', JSON.stringify(rows[0]?.details));
    });
  }

  it('a server-only internal pair (postgres) is refused by TLS itself: not a client certificate', async () => {
    const pair = await internalPair('postgres', '127.0.0.1');
    const client = presenting({ cert: join(pair.dir, 'postgres.pem'), key: join(pair.dir, 'postgres.key') });
    await assert.rejects(client.approvals(), (err: { code?: string; message?: string }) => err.code === 'CLIENT_CERT_INVALID' && /unsupported certificate purpose|does not chain/.test(err.message ?? ''));
    await client.close();
  });
});
