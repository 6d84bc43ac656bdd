import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { syntheticEui64 } from '@fleetpki/manifest';
import { archiverState, ownerPool, repositoryInfo, restoreToScratch } from '@fleetpki/sites';
import type { Pool } from '@fleetpki/store';
import { generateDeviceKeys, toPem } from '@fleetpki/x509';
import { createToken, ensureCa, openssl, siteAPool, writeCaFile, type TestCa } from './support/ca.js';
import { cli, lastJson } from './support/cli.js';
import { ensureSites } from './support/sites.js';

/**
 * Issue 35: pgBackRest archives every site's WAL and takes backups into one encrypted repository, and a
 * restore to a time T gives back exactly what was acknowledged by T, with its audit chain and seals.
 * Real parts throughout: the sites' clusters, pgbackrest, a scratch cluster restored beside them.
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let issuer: IssuerRuntime;
let factoryToken: string;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  issuer = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4 });
  factoryToken = await createToken(pool, 'factory', 'backup-maker');
});

after(async () => {
  await issuer?.close();
  await pool?.end();
});

/** One device enrolled and acknowledged (201 with its certificate): its serial. */
async function enrol(): Promise<string> {
  const [key] = generateDeviceKeys(1);
  const res = await issuer.app.inject({
    method: 'POST',
    url: '/v1/enrolments',
    headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
    payload: { eui64: syntheticEui64('backup-maker'), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json<{ serial: string }>().serial.toLowerCase();
}

/** Every file under `dir`. */
function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else yield path;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));


describe('backups (pgBackRest)', () => {
  it('archives WAL from the primary and takes full backups into the repository, encrypted; expire keeps what retention says', async () => {
    const archiver = await archiverState(config);
    assert.equal(archiver.archiveMode, 'on');
    assert.equal(archiver.site, 'a');
    const fullsBefore = (await repositoryInfo(config)).backups.filter((b) => b.type === 'full').map((b) => b.label);
    const made: { label: string; type: string }[] = [];
    // One more than retention keeps, so expire has one to remove.
    for (let i = fullsBefore.length; i <= config.backup.retention.full; i++) {
      const run = await cli(['backup', 'run', '--type', 'full', '--json'], {}, 600_000);
      assert.equal(run.code, 0, run.stderr);
      made.push(lastJson<{ label: string; type: string }>(run.stdout));
    }
    assert.ok(made.length > 0 && made.every((m) => m.type === 'full'));
    const info = await repositoryInfo(config);
    assert.equal(info.status.code, 0, info.status.message);
    const fulls = info.backups.filter((b) => b.type === 'full').map((b) => b.label);
    assert.ok(made.every((m) => fulls.includes(m.label)), 'the new backups are in the repository');
    assert.equal(fulls.length, config.backup.retention.full, `expire kept ${config.backup.retention.full} full backups (before: ${fullsBefore.join(', ')}; now: ${fulls.join(', ')})`);
    // Encrypted: every file pgBackRest writes there is OpenSSL's salted format, never PostgreSQL's own bytes.
    const segment = [...walk(join(config.backup.repository, 'archive'))].find((f) => /\/[0-9A-F]{24}-[0-9a-f]{40}\.lz4$/.test(f));
    assert.ok(segment, 'an archived WAL segment in the repository');
    assert.equal(readFileSync(segment).subarray(0, 8).toString('latin1'), 'Salted__', `${segment} is encrypted`);
    const check = await cli(['backup', 'check']);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /archive check passed/);
    const status = await cli(['sites', 'status']);
    assert.match(status.stdout, /archive\s+ok\s+check passed/);
  });

  it('restores to a time T: every certificate acknowledged by T is there, none issued after it, and the restored ones verify with openssl', async () => {
    const before = [await enrol(), await enrol(), await enrol()];
    await pause(1_100);
    const target = new Date();
    await pause(1_100);
    const afterwards = [await enrol(), await enrol()];
    const scratch = await restoreToScratch(config, { target });
    const restored = ownerPool(config, scratch.site, config.pgDatabase, { max: 1 });
    try {
      const has = async (serial: string) => (await restored.query('SELECT 1 FROM certificates WHERE serial = $1', [Buffer.from(serial, 'hex')])).rowCount === 1;
      for (const s of before) assert.ok(await has(s), `certificate ${s}, acknowledged before T, is in the restore`);
      for (const s of afterwards) assert.equal(await has(s), false, `certificate ${s}, issued after T, is not in the restore`);
      const { rows } = await restored.query<{ der: Buffer }>('SELECT der FROM certificates WHERE serial = $1', [Buffer.from(before[2]!, 'hex')]);
      const path = writeCaFile(ca, `restored-${before[2]}.pem`, toPem(rows[0]!.der, 'CERTIFICATE'));
      assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, path]), /: OK/);
    } finally {
      await restored.end();
      await scratch.remove();
    }
  });

  it('drill restore --to-time T gives back a certificate deleted by mistake after T, names the last one acknowledged by T, verifies the audit chain, and is recorded', async () => {
    const sealed = await cli(['audit', 'seal', '--settle-ms', '0']);
    assert.equal(sealed.code, 0, sealed.stderr);
    const victim = await enrol();
    const last = await enrol();
    await pause(1_100);
    const target = new Date();
    await pause(1_100);
    const later = await enrol();
    // The bad write a backup is for: an owner's mistaken DELETE, replicated to B at once.
    await pool.query('DELETE FROM ocsp_responses WHERE serial = $1', [Buffer.from(victim, 'hex')]);
    const deleted = await pool.query('DELETE FROM certificates WHERE serial = $1', [Buffer.from(victim, 'hex')]);
    assert.equal(deleted.rowCount, 1);
    const run = await cli(['drill', 'restore', '--to-time', target.toISOString(), '--json'], {}, 600_000);
    assert.equal(run.code, 0, `${run.stderr}\n${run.stdout.slice(-2000)}`);
    const r = lastJson<Record<string, unknown> & { audit: { problems: string[]; checkpoints_by_target: number; rows: number } }>(run.stdout);
    assert.equal(r.last_serial, last, 'the newest certificate in the restore is the last one acknowledged before T');
    assert.notEqual(r.last_serial, later);
    assert.equal(r.removed_since_target, 1, 'the deleted certificate is in the restore and no longer live');
    assert.equal(r.commit_times, true, 'the live database is compared by commit time');
    assert.equal(r.missing_from_restore, 0);
    assert.equal(r.certificates_restored, (r.live_certificates_by_target as number) + 1, 'everything committed by T, the deleted one included');
    assert.deepEqual(r.audit.problems, []);
    assert.ok(r.audit.checkpoints_by_target > 0 && r.audit.rows > 0, 'the audit chain was checked against checkpoints written by T');
    assert.equal(r.verified, true);
    const { rows } = await pool.query<{ kind: string; report: { target: string } }>("SELECT kind, report FROM drill_runs WHERE kind = 'restore' ORDER BY finished_at DESC LIMIT 1");
    assert.equal(rows[0]?.report.target, target.toISOString(), 'the drill is in drill_runs');
  });

  it('refuses a target it cannot restore to, naming why', async () => {
    const future = await cli(['drill', 'restore', '--to-time', new Date(Date.now() + 3_600_000).toISOString()]);
    assert.notEqual(future.code, 0);
    assert.match(future.stderr, /INPUT_INVALID.*in the future/);
    const vague = await cli(['drill', 'restore', '--to-time', 'yesterday']);
    assert.match(vague.stderr, /INPUT_INVALID.*ISO 8601/);
    const early = await cli(['drill', 'restore', '--to-time', '2001-01-01T00:00:00Z']);
    assert.match(early.stderr, /RESTORE_TARGET_UNREACHABLE.*before the oldest backup/);
  });
});
