import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import { writeFileForPgUser } from './os-user.js';
import { patroniDocument } from './patroni-config.js';

const dir = mkdtempSync(join(tmpdir(), 'fleetpki-patroni-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed pair whose subjectAltName is `san` (openssl: these checks read the certificate only). */
function pair(name: string, san: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-days', '1', '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  return { cert, key };
}

const base = { FLEETPKI_STATE_DIR: join(dir, 'state'), FLEETPKI_DATABASE_HA: 'patroni' };

describe("Patroni's configuration with TLS", () => {
  it('is refused with TLS on one of its links only (the REST password or trust lines would travel in plaintext)', () => {
    const pg = pair('postgres', 'IP:127.0.0.1');
    const config = loadConfig({ ...base, FLEETPKI_TLS_CA_BUNDLE: pg.cert, FLEETPKI_TLS_POSTGRES_CERT: pg.cert, FLEETPKI_TLS_POSTGRES_KEY: pg.key });
    assert.throws(() => patroniDocument(config, config.sites.a), (err: Error & { code?: string }) => err.code === 'SITES_PATRONI_TLS_PARTIAL' && /etcd is reached over http/.test(err.message));
  });

  it("is refused when the PostgreSQL pair, which its REST API serves, does not name the API's host", () => {
    const pg = pair('elsewhere', 'DNS:db.example');
    const etcd = pair('etcd', 'IP:127.0.0.1');
    const config = loadConfig({ ...base, FLEETPKI_TLS_CA_BUNDLE: pg.cert, FLEETPKI_TLS_POSTGRES_CERT: pg.cert, FLEETPKI_TLS_POSTGRES_KEY: pg.key, FLEETPKI_TLS_ETCD_CERT: etcd.cert, FLEETPKI_TLS_ETCD_KEY: etcd.key, FLEETPKI_TLS_ETCD_CLIENT_CERT: etcd.cert, FLEETPKI_TLS_ETCD_CLIENT_KEY: etcd.key });
    assert.throws(() => patroniDocument(config, config.sites.a), (err: Error & { code?: string }) => err.code === 'SITES_PATRONI_TLS_NAME' && err.message.includes(config.sites.a.patroniHost));
  });
});

describe('files written for the postgres OS user', () => {
  it('replace a link planted at the name instead of writing through it', () => {
    const folder = join(dir, 'owned-by-postgres');
    mkdirSync(folder);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched\n');
    const target = join(folder, 'patroni.yml');
    symlinkSync(victim, target);
    writeFileForPgUser(target, 'secret: 1\n', 'postgres', false);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched\n', 'the link\'s target was not written');
    assert.equal(lstatSync(target).isSymbolicLink(), false);
    assert.equal(lstatSync(target).mode & 0o777, 0o600);
    assert.equal(readFileSync(target, 'utf8'), 'secret: 1\n');
  });
});
