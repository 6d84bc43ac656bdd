import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { DeviceKeyService, issueOrganisationCertificate } from '@fleetpki/ca';
import { openSiteKeyStore, type KeyStore } from '@fleetpki/hsm';
import { syntheticEui64 } from '@fleetpki/manifest';
import { createPool, getManufacturerManifestKey, getManufacturerTransportKey, listMasterKeys, manufacturerExists, migrate, setManufacturerTransportKey, type Pool } from '@fleetpki/store';
import { cli } from './support/cli.js';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { createScratchDatabase, ensureSites } from './support/sites.js';

/**
 * The CLI changes trust only on a person's credential (issue 40 §5, issue 33 §2): owner-access recovery,
 * device-key bundles, manufacturers' keys, organisation certificates. Each attack as it was reproduced,
 * against the real CLI process, database and HSM. FLEETPKI_ACTOR is set on every call: no audit row may
 * take its actor from it.
 * Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).
 */
let config: FleetConfig;
let pool: Pool;
let keyStore: KeyStore;
const dir = mkdtempSync(join(tmpdir(), 'fleetpki-trust-cli-'));
const file = (name: string) => join(dir, name);
const MAKER_A = 'trust-maker-a';
const MAKER_C = 'trust-maker-c';
const suffix = randomBytes(3).toString('hex');
const ADMIN_1 = `trust-admin-1-${suffix}`;
const ADMIN_2 = `trust-admin-2-${suffix}`;
/** A name nobody holds: what an attacker would like the audit log to blame. */
const BLAMED = { FLEETPKI_ACTOR: 'carol-who-did-nothing' };
let admin1File: string;
let admin2File: string;
let factoryFile: string;

function keyPairFiles(name: string): { pub: string; spki: Buffer } {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = file(`${name}.pub.pem`);
  writeFileSync(pub, pair.publicKey.export({ format: 'pem', type: 'spki' }));
  return { pub, spki: pair.publicKey.export({ format: 'der', type: 'spki' }) };
}

async function auditRows(action: string, subject: string): Promise<{ actor: string; details: Record<string, unknown> }[]> {
  const { rows } = await pool.query<{ actor: string; details: Record<string, unknown> }>('SELECT actor, details FROM audit_events WHERE action = $1 AND subject = $2 ORDER BY seq', [action, subject]);
  return rows;
}

async function orgCertificateRevoked(serialHex: string): Promise<boolean> {
  const { rows } = await pool.query<{ revoked: boolean }>('SELECT revoked_at IS NOT NULL AS revoked FROM organisation_certificates WHERE serial = $1', [Buffer.from(serialHex, 'hex')]);
  assert.equal(rows.length, 1, `organisation certificate ${serialHex} exists`);
  return rows[0]!.revoked;
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  admin1File = file('admin-1.token');
  admin2File = file('admin-2.token');
  factoryFile = file('factory.token');
  writeFileSync(admin1File, await createToken(pool, 'administrator', null, ADMIN_1));
  writeFileSync(admin2File, await createToken(pool, 'administrator', null, ADMIN_2));
  writeFileSync(factoryFile, await createToken(pool, 'factory', MAKER_A, `trust-factory-a-${suffix}`));
  // createToken registers maker C with its block of device ids: its own devices are the ones it may get keys for.
  await createToken(pool, 'factory', MAKER_C, `trust-factory-c-${suffix}`);
  keyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  if (!(await listMasterKeys(pool)).some((m) => m.role === 'mac' && m.status === 'active')) await new DeviceKeyService(pool, keyStore, 'a').createMasterKey('mac', 'test');
  await setManufacturerTransportKey(pool, MAKER_C, keyPairFiles('factory-c-transport').spki);
});

after(async () => {
  await keyStore?.close();
  await pool?.end();
});

describe('owner-access recovery', () => {
  it('refuses while two administrators can still approve together, and never gives an existing person a new token', async () => {
    // A database of its own: recovery is about how many administrators remain, which other tests change.
    const scratch = await createScratchDatabase(config);
    const scratchPool = createPool(scratch.urlA, { max: 2 });
    try {
      await migrate(scratchPool, join(config.repoRoot, 'migrations'));
      const env = { ...BLAMED, FLEETPKI_PG_DATABASE: scratch.name };
      let attempt = 0;
      const out = (name: string, n: number) => file(`${scratch.name}-${name}-${n}.token`);
      const recover = (name: string) => cli(['recovery', '--admin', name, '--reason', 'test: administrators lost', '--out', out(name, ++attempt)], env);
      const tokensOf = async (name: string) => (await scratchPool.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens WHERE name = $1', [name])).rows[0]!.n;

      // No administrator left, then one alone (who cannot approve by themselves): recovery makes one each time.
      for (const name of ['rescue-1', 'rescue-2']) {
        const made = await recover(name);
        assert.equal(made.code, 0, made.stderr);
      }
      // Two administrators who can approve together: the database owner's access is no shortcut to a third.
      const third = await recover('rescue-3');
      assert.notEqual(third.code, 0, 'recovery ran while two administrators could approve together');
      assert.match(third.stderr, /RECOVERY_REFUSED/);
      assert.equal(existsSync(out('rescue-3', attempt)), false, 'no token file for a refused recovery');
      // One administrator loses their only credential: the other alone cannot approve, recovery may run again,
      // but only for a new person: re-tokening an existing administrator would give one holder of the owner's
      // access two administrators' tokens.
      await scratchPool.query("UPDATE api_tokens SET revoked_at = now() WHERE name = 'rescue-2'");
      for (const name of ['rescue-1', 'rescue-2']) {
        const again = await recover(name);
        assert.notEqual(again.code, 0, `${name} got a new token through recovery`);
        assert.match(again.stderr, /PERSON_EXISTS/);
        assert.equal(await tokensOf(name), 1);
      }
      const replacement = await recover('rescue-4');
      assert.equal(replacement.code, 0, replacement.stderr);
      const { rows } = await scratchPool.query<{ actor: string; subject: string }>("SELECT actor, subject FROM audit_events WHERE action = 'access.recovery.owner' ORDER BY seq");
      assert.deepEqual(rows.map((r) => r.subject), ['rescue-1', 'rescue-2', 'rescue-4']);
      for (const r of rows) assert.doesNotMatch(r.actor, /carol/, 'the audit actor is not taken from FLEETPKI_ACTOR');
    } finally {
      await scratchPool.end();
      await scratch.drop();
    }
  });
});

describe('device-key bundles', () => {
  it("`keys issue` takes an administrator's token, wraps keys only of the manufacturer's own devices, and audits that person", async () => {
    // Reproduced: a MAC key of maker A's device wrapped for maker C, with no credential, audited as FLEETPKI_ACTOR.
    const victim = syntheticEui64(MAKER_A);
    await pool.query("INSERT INTO devices (eui64, manufacturer_id, device_type) VALUES ($1, $2, 'smart-meter')", [Buffer.from(victim, 'hex'), MAKER_A]);
    writeFileSync(file('victim.txt'), `${victim}\n`);
    const issue = (devices: string, out: string, env: Record<string, string>, context: string) => cli(['keys', 'issue', '--manufacturer', MAKER_C, '--devices', devices, '--roles', 'mac', '--context', context, '--out', out], { ...BLAMED, ...env });

    const anonymous = await issue(file('victim.txt'), file('anonymous.ndjson'), {}, `anonymous-${suffix}`);
    assert.notEqual(anonymous.code, 0, "another manufacturer's device key was wrapped for maker C without any credential");
    assert.match(anonymous.stderr, /TOKEN_MISSING/);
    assert.equal(existsSync(file('anonymous.ndjson')), false);

    const factory = await issue(file('victim.txt'), file('factory.ndjson'), { FLEETPKI_TOKEN: readFileSync(factoryFile, 'utf8') }, `factory-${suffix}`);
    assert.match(factory.stderr, /ROLE_FORBIDDEN/);

    const foreign = await issue(file('victim.txt'), file('foreign.ndjson'), { FLEETPKI_TOKEN: readFileSync(admin1File, 'utf8') }, `foreign-${suffix}`);
    assert.notEqual(foreign.code, 0, "an administrator wrapped maker A's device key for maker C");
    assert.match(foreign.stderr, new RegExp(`EUI64_OUTSIDE_RANGE: .*${victim}.*${MAKER_C}`));
    assert.equal(existsSync(file('foreign.ndjson')), false);
    assert.deepEqual(await auditRows('device-key.bundle', `foreign-${suffix}`), []);

    const own = syntheticEui64(MAKER_C);
    writeFileSync(file('own.txt'), `${own}\n`);
    const ok = await issue(file('own.txt'), file('own.ndjson'), { FLEETPKI_TOKEN: readFileSync(admin1File, 'utf8') }, `own-${suffix}`);
    assert.equal(ok.code, 0, ok.stderr);
    const [row] = await auditRows('device-key.bundle', `own-${suffix}`);
    assert.match(row?.actor ?? '', new RegExp(`^person:${ADMIN_1} via token:`), 'the administrator who ran it, not FLEETPKI_ACTOR');
  });

  it("`keys master create` takes a custodian's token", async () => {
    const none = await cli(['keys', 'master', 'create', '--role', 'mac'], BLAMED);
    assert.match(none.stderr, /TOKEN_MISSING/);
    const admin = await cli(['keys', 'master', 'create', '--role', 'mac', '--token-file', admin1File], BLAMED);
    assert.match(admin.stderr, /ROLE_FORBIDDEN/);
  });
});

describe("manufacturers' keys", () => {
  it("`manufacturers add`, `set-key` and `set-transport-key` take an administrator's token; without one the trusted keys stay as they were", async () => {
    const attacker = keyPairFiles('attacker');
    const transportBefore = await getManufacturerTransportKey(pool, MAKER_C);
    for (const command of ['set-key', 'set-transport-key']) {
      const anonymous = await cli(['manufacturers', command, MAKER_A, attacker.pub], BLAMED);
      assert.notEqual(anonymous.code, 0, `${command} changed whose keys are trusted without any credential`);
      assert.match(anonymous.stderr, /TOKEN_MISSING/);
      const factory = await cli(['manufacturers', command, MAKER_C, attacker.pub, '--token-file', factoryFile], BLAMED);
      assert.match(factory.stderr, /ROLE_FORBIDDEN/);
    }
    assert.equal(await getManufacturerManifestKey(pool, MAKER_A), null);
    assert.deepEqual(await getManufacturerTransportKey(pool, MAKER_C), transportBefore);
    const invented = `trust-invented-${suffix}`;
    const add = await cli(['manufacturers', 'add', invented, 'Invented Meters'], BLAMED);
    assert.match(add.stderr, /TOKEN_MISSING/);
    assert.equal(await manufacturerExists(pool, invented), false);

    const manifestKey = keyPairFiles('maker-a-manifest');
    const set = await cli(['manufacturers', 'set-key', MAKER_A, manifestKey.pub, '--token-file', admin1File], BLAMED);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(await getManufacturerManifestKey(pool, MAKER_A), manifestKey.spki);
    const rows = await auditRows('manufacturer.manifest-key', MAKER_A);
    assert.match(rows.at(-1)?.actor ?? '', new RegExp(`^person:${ADMIN_1} via token:`));
  });
});

describe('organisation certificates', () => {
  it("`tls revoke` takes an administrator's token; the CMP and audit certificates take two administrators together", async () => {
    // A factory line's client certificate, issued as administrators issue one.
    const line = `trust-line-${suffix}`;
    await createToken(pool, 'factory', MAKER_A, line);
    const made = await cli(['tls', 'client', '--name', line, '--out', file('line'), '--token-file', admin1File]);
    assert.equal(made.code, 0, made.stderr);
    const clientSerial = /client certificate ([0-9a-f]+)/.exec(made.stdout)![1]!;

    const anonymous = await cli(['tls', 'revoke', clientSerial], BLAMED);
    assert.notEqual(anonymous.code, 0, 'an organisation certificate was revoked without any credential');
    assert.match(anonymous.stderr, /TOKEN_MISSING/);
    assert.equal(await orgCertificateRevoked(clientSerial), false);
    const factory = await cli(['tls', 'revoke', clientSerial, '--token-file', factoryFile], BLAMED);
    assert.match(factory.stderr, /ROLE_FORBIDDEN/);
    const revoked = await cli(['tls', 'revoke', clientSerial, '--token-file', admin1File], BLAMED);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(await orgCertificateRevoked(clientSerial), true);
    assert.match((await auditRows('org-certificate.revoke', clientSerial))[0]?.actor ?? '', new RegExp(`^person:${ADMIN_1} via token:`));

    for (const purpose of ['cmp', 'audit'] as const) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const issued = await issueOrganisationCertificate(pool, keyStore, 'a', { purpose, subject: { organization: 'fleetpki', commonName: `trust-cli ${purpose} ${suffix}` }, publicKeySpki: publicKey.export({ format: 'der', type: 'spki' }), days: 1, actor: 'test' });
      const serial = issued.serial.toString('hex');
      const alone = await cli(['tls', 'revoke', serial, '--token-file', admin1File], BLAMED);
      assert.match(alone.stderr, /DUAL_CONTROL_REQUIRED/, `one administrator revoked the ${purpose} certificate`);
      const twice = await cli(['tls', 'revoke', serial, '--token-file', admin1File, '--second-token-file', admin1File], BLAMED);
      assert.match(twice.stderr, /APPROVAL_SAME_PEOPLE/);
      assert.equal(await orgCertificateRevoked(serial), false);
      const two = await cli(['tls', 'revoke', serial, '--token-file', admin1File, '--second-token-file', admin2File], BLAMED);
      assert.equal(two.code, 0, two.stderr);
      assert.equal(await orgCertificateRevoked(serial), true);
      assert.match((await auditRows('org-certificate.revoke', serial))[0]?.actor ?? '', new RegExp(`^person:${ADMIN_1} via token:\\S+ \\+ person:${ADMIN_2} via token:`));
    }
  });

  it("`tls server` takes an administrator's token", async () => {
    const anonymous = await cli(['tls', 'server'], BLAMED);
    assert.match(anonymous.stderr, /TOKEN_MISSING/);
  });
});
