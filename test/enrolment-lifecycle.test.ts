import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { registerSyntheticManufacturer } from '@fleetpki/ca';
import { syntheticEui64 } from '@fleetpki/manifest';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { recordIntents, staleOnlineIntents, storeCertificates, type Pool } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * An intent never strands a device: the issuer-api killed between the intent's commit and the
 * certificate's store leaves an intent the daemons' online-intent reconciler releases (audited), after which the device enrols
 * with no duplicate serial; a retry with the same key gets the certificate already issued (200, nothing
 * signed); a revoked device enrols again for the same role (a new certificate, audited).
 */
let config: FleetConfig;
let pool: Pool;
let factoryToken: string;
let officerToken: string;
const port = () => config.sites.a.apiPort + 500;
const env = { FLEETPKI_SITE: 'a', FLEETPKI_INTENT_TIMEOUT_SECONDS: '2' };

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  factoryToken = await createToken(pool, 'factory', 'lifecycle-maker', `lifecycle-factory-${randomBytes(3).toString('hex')}`);
  officerToken = await createToken(pool, 'revocation-officer', null, `lifecycle-officer-${randomBytes(3).toString('hex')}`);
});

after(async () => {
  await pool?.end();
});

async function enrol(eui64: string, csr: Buffer): Promise<{ status: number; body: { serial?: string; code?: string; reused?: boolean } }> {
  const res = await fetch(`http://127.0.0.1:${port()}/v1/enrolments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${factoryToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ eui64, keyRole: 'digitalSignature', csr: csr.toString('base64') }),
  });
  return { status: res.status, body: (await res.json()) as { serial?: string; code?: string } };
}

async function rowsFor(eui64: string): Promise<{ intents: { serial: string; active: boolean; released: string | null }[]; certificates: string[] }> {
  const eui = Buffer.from(eui64, 'hex');
  const intents = (await pool.query<{ serial: Buffer; active: boolean; released_reason: string | null }>('SELECT serial, active, released_reason FROM issuance_intents WHERE eui64 = $1 ORDER BY created_at', [eui])).rows;
  const certificates = (await pool.query<{ serial: Buffer }>('SELECT serial FROM certificates WHERE eui64 = $1 ORDER BY issued_at', [eui])).rows;
  return { intents: intents.map((r) => ({ serial: r.serial.toString('hex'), active: r.active, released: r.released_reason })), certificates: certificates.map((r) => r.serial.toString('hex')) };
}

describe('online enrolment never strands a device', () => {
  it('killed between the intent and the certificate: the reconciler releases the intent, the device then enrols, no duplicate serial', async () => {
    const eui64 = syntheticEui64('lifecycle-maker');
    const [key] = generateDeviceKeys(1);
    // An issuer-api that dies (SIGKILL) right after committing an intent, before the HSM signs.
    const crashing = startService(config, 'issuer-api', { ...env, FLEETPKI_API_PORT_A: String(port()), FLEETPKI_TEST_CRASH_AFTER_INTENT: '1' });
    try {
      await waitForHttp(`http://127.0.0.1:${port()}/readyz`);
      await assert.rejects(enrol(eui64, key!.csr), 'the connection dies with the process');
      await new Promise<void>((resolve) => (crashing.exitCode !== null || crashing.signalCode !== null ? resolve() : crashing.once('exit', () => resolve())));
      assert.equal(crashing.signalCode, 'SIGKILL');
    } finally {
      await stopProcess(crashing);
    }
    const stranded = await rowsFor(eui64);
    assert.equal(stranded.intents.length, 1);
    assert.deepEqual([stranded.intents[0]!.active, stranded.certificates.length], [true, 0], 'an intent without its certificate');

    const issuer = startService(config, 'issuer-api', { ...env, FLEETPKI_API_PORT_A: String(port()) });
    // The site's daemons, with the online-intent reconciler alone, as production runs it.
    const daemons = startService(config, 'daemons', { ...env, FLEETPKI_DAEMONS: 'online-intents', FLEETPKI_METRICS_PORT: '0' });
    try {
      await waitForHttp(`http://127.0.0.1:${port()}/readyz`);
      // The reconciler releases it on its own, with an audit row.
      await waitFor('the reconciler to release the intent', async () => ((await rowsFor(eui64)).intents[0]!.active ? undefined : true), 20_000, 200);
      const audit = await pool.query('SELECT 1 FROM audit_events WHERE action = $1 AND subject = $2', ['issuance.intent.released', stranded.intents[0]!.serial]);
      assert.equal(audit.rowCount, 1);
      const done = await enrol(eui64, key!.csr);
      assert.equal(done.status, 201, JSON.stringify(done.body));
      const after = await rowsFor(eui64);
      assert.deepEqual(after.certificates, [done.body.serial!.toLowerCase()], 'one certificate, the new serial');
      assert.notEqual(done.body.serial!.toLowerCase(), stranded.intents[0]!.serial, 'no serial reused');
      assert.equal(after.intents.filter((i) => i.active).length, 1);
      assert.match(after.intents[0]!.released ?? '', /no certificate/);
    } finally {
      await stopProcess(daemons);
      await stopProcess(issuer);
    }
  });

  it('a retry with the same key gets the same certificate (200, nothing signed); another key is refused; after a revocation the device enrols again', async () => {
    const issuer = startService(config, 'issuer-api', { ...env, FLEETPKI_API_PORT_A: String(port()) });
    try {
      await waitForHttp(`http://127.0.0.1:${port()}/readyz`);
      const eui64 = syntheticEui64('lifecycle-maker');
      const [key, other] = generateDeviceKeys(2);
      const first = await enrol(eui64, key!.csr);
      assert.equal(first.status, 201);
      const again = await enrol(eui64, key!.csr);
      assert.deepEqual([again.status, again.body.serial, again.body.reused], [200, first.body.serial, true]);
      const otherKey = await enrol(eui64, other!.csr);
      assert.deepEqual([otherKey.status, otherKey.body.code], [409, 'CERTIFICATE_EXISTS']);
      assert.equal((await rowsFor(eui64)).certificates.length, 1, 'nothing new signed');

      const revoked = await fetch(`http://127.0.0.1:${port()}/v1/revocations`, { method: 'POST', headers: { authorization: `Bearer ${officerToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ serials: [first.body.serial], reason: 'keyCompromise' }) });
      assert.equal(revoked.status, 200, await revoked.text());
      const reenrolled = await enrol(eui64, other!.csr);
      assert.equal(reenrolled.status, 201, JSON.stringify(reenrolled.body));
      assert.notEqual(reenrolled.body.serial, first.body.serial);
      const rows = await rowsFor(eui64);
      assert.equal(rows.certificates.length, 2);
      assert.deepEqual(rows.intents.map((i) => i.active), [false, true]);
      const audit = await pool.query('SELECT 1 FROM audit_events WHERE action = $1 AND subject = $2', ['issuance.intent.superseded', first.body.serial!.toLowerCase()]);
      assert.equal(audit.rowCount, 1, 'the re-enrolment after revocation is audited');
    } finally {
      await stopProcess(issuer);
    }
  });

  it("the reconciler's windowed scan finds a stale intent created in its window and not one before it; a full scan finds both", async () => {
    await registerSyntheticManufacturer(pool, { site: 'a', id: 'lifecycle-maker', name: 'Lifecycle Meters', actor: 'test' });
    const intent = (eui: string) => ({ serial: randomBytes(9), caId: 'fpd1', eui64: Buffer.from(eui, 'hex'), keyRole: 'digitalSignature', profile: 'smart-meter', tbsSha256: randomBytes(32), manufacturerId: 'lifecycle-maker', deviceType: 'smart-meter', actor: 'test' });
    const old = intent(syntheticEui64('lifecycle-maker'));
    const recent = intent(syntheticEui64('lifecycle-maker'));
    assert.equal((await recordIntents(pool, 'a', [old, recent])).size, 2);
    // Stranded for two hours and for 90 s: both past a 60 s timeout, without certificates.
    await pool.query(`UPDATE issuance_intents SET created_at = clock_timestamp() - CASE WHEN serial = $1 THEN interval '2 hours' ELSE interval '90 seconds' END WHERE serial = ANY($2::bytea[])`, [old.serial, [old.serial, recent.serial]]);
    const hex = (scan: { serials: Buffer[] }) => new Set(scan.serials.map((s) => s.toString('hex')));

    const full = await staleOnlineIntents(pool, 60, null);
    assert.ok(hex(full).has(old.serial.toString('hex')) && hex(full).has(recent.serial.toString('hex')), 'a full scan finds both');
    const windowed = await staleOnlineIntents(pool, 60, new Date(Date.now() - 10 * 60_000));
    assert.deepEqual([hex(windowed).has(old.serial.toString('hex')), hex(windowed).has(recent.serial.toString('hex'))], [false, true], 'a scan from 10 minutes ago finds only the recent one');
    // The window ends at the horizon (now - timeout, the database's clock), unless it stopped at the limit.
    assert.ok(Math.abs(windowed.scannedUntil.getTime() - (Date.now() - 60_000)) < 30_000, `scannedUntil ${windowed.scannedUntil.toISOString()}`);
    const limited = await staleOnlineIntents(pool, 60, null, 1);
    assert.equal(limited.serials.length, 1);
    assert.ok(limited.scannedUntil.getTime() < Date.now() - 80_000, 'stopped at the limit: the next pass starts at the last row found');
    await pool.query('UPDATE issuance_intents SET active = false, released_at = clock_timestamp(), released_reason = $2 WHERE serial = ANY($1::bytea[])', [[old.serial, recent.serial], 'test cleanup']);
  });

  it('a group commit in one statement: foreign devices, ids outside the ranges and taken roles are refused, released intents get no certificate, each row audited with its own actor', async () => {
    await registerSyntheticManufacturer(pool, { site: 'a', id: 'lifecycle-maker', name: 'Lifecycle Meters', actor: 'test' });
    await registerSyntheticManufacturer(pool, { site: 'a', id: 'other-maker', name: 'Other Meters', actor: 'test' });
    const intent = (eui: string, manufacturerId: string, actor: string) => ({ serial: randomBytes(9), caId: 'fpd1', eui64: Buffer.from(eui, 'hex'), keyRole: 'digitalSignature', profile: 'smart-meter', tbsSha256: randomBytes(32), manufacturerId, deviceType: 'smart-meter', actor });
    const foreign = syntheticEui64('other-maker');
    assert.equal((await recordIntents(pool, 'a', [intent(foreign, 'other-maker', 'x')])).size, 1, "the other maker's device");
    const a = intent(syntheticEui64('lifecycle-maker'), 'lifecycle-maker', 'line-1');
    const b = intent(syntheticEui64('lifecycle-maker'), 'lifecycle-maker', 'line-2');
    const theirs = intent(foreign, 'lifecycle-maker', 'line-1');
    // First octet 01 (U/L bit clear): in no synthetic block, so outside every registered range.
    const unranged = intent(`01${randomBytes(7).toString('hex')}`, 'lifecycle-maker', 'line-1');
    const recorded = await recordIntents(pool, 'a', [a, b, { ...a, serial: randomBytes(9) }, theirs, unranged]);
    assert.deepEqual([...recorded].sort(), [a.serial.toString('hex'), b.serial.toString('hex')].sort(), "one intent per (device, role, profile); none for a device of another manufacturer, none outside the manufacturer's ranges");
    assert.equal((await pool.query('SELECT 1 FROM devices WHERE eui64 = $1', [unranged.eui64])).rowCount, 0, 'an id outside the ranges is not claimed either');
    const audit = await pool.query<{ subject: string; actor: string; details: Record<string, string> }>("SELECT subject, actor, details FROM audit_events WHERE action = 'issuance.intent' AND subject = ANY($1::text[]) ORDER BY actor", [[a.serial.toString('hex'), b.serial.toString('hex')]]);
    assert.deepEqual(audit.rows, [
      { subject: a.serial.toString('hex'), actor: 'line-1', details: { eui64: a.eui64.toString('hex').toUpperCase(), keyRole: 'digitalSignature', profile: 'smart-meter', tbsSha256: a.tbsSha256.toString('hex') } },
      { subject: b.serial.toString('hex'), actor: 'line-2', details: { eui64: b.eui64.toString('hex').toUpperCase(), keyRole: 'digitalSignature', profile: 'smart-meter', tbsSha256: b.tbsSha256.toString('hex') } },
    ]);

    // b's intent is released (the reconciler, say) before its certificate comes: only a's is stored.
    await pool.query('UPDATE issuance_intents SET active = false, released_at = clock_timestamp(), released_reason = $2 WHERE serial = $1', [b.serial, 'test: released']);
    const certificate = (i: typeof a) => ({ serial: i.serial, caId: 'fpd1', eui64: i.eui64, keyRole: i.keyRole, profile: i.profile, der: randomBytes(100), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), crlShard: 0, actor: i.actor });
    const released = await storeCertificates(pool, 'a', [certificate(a), certificate(b)]);
    assert.deepEqual([...released], [b.serial.toString('hex')]);
    assert.deepEqual([...(await storeCertificates(pool, 'a', [certificate(a)]))], [], 'a retry is a no-op');
    const stored = await pool.query<{ serial: Buffer }>('SELECT serial FROM certificates WHERE serial = ANY($1::bytea[])', [[a.serial, b.serial]]);
    assert.deepEqual(stored.rows.map((r) => r.serial.toString('hex')), [a.serial.toString('hex')]);
    const certAudit = await pool.query<{ actor: string }>("SELECT actor FROM audit_events WHERE action = 'issuance.certificate' AND subject = ANY($1::text[])", [[a.serial.toString('hex'), b.serial.toString('hex')]]);
    assert.deepEqual(certAudit.rows, [{ actor: 'line-1' }], 'one audit row, for the certificate stored');
  });

  it("one intent writer: a batch chunk's intents carry their batch, chunk and notBefore, lose to a live online intent, and are not audited one by one", async () => {
    await registerSyntheticManufacturer(pool, { site: 'a', id: 'lifecycle-maker', name: 'Lifecycle Meters', actor: 'test' });
    const batchId = randomUUID();
    await pool.query(
      `INSERT INTO batches (id, manufacturer_id, idempotency_key, manifest_sha256, profile, status, device_count, chunk_count) VALUES ($1, 'lifecycle-maker', $3, $2, 'smart-meter', 'issuing', 2, 1)`,
      [batchId, randomBytes(32), `lifecycle-${batchId}`],
    );
    const intent = (eui: string, actor: string, notBefore?: Date) => ({ serial: randomBytes(9), caId: 'fpd1', eui64: Buffer.from(eui, 'hex'), keyRole: 'digitalSignature', profile: 'smart-meter', tbsSha256: randomBytes(32), manufacturerId: 'lifecycle-maker', deviceType: 'smart-meter', actor, ...(notBefore ? { notBefore } : {}) });
    const taken = syntheticEui64('lifecycle-maker');
    const online = intent(taken, 'line-1');
    assert.equal((await recordIntents(pool, 'a', [online])).size, 1);
    const notBefore = new Date('2026-01-02T03:04:05Z');
    const fresh = intent(syntheticEui64('lifecycle-maker'), 'batch-worker', notBefore);
    const lost = intent(taken, 'batch-worker', notBefore);
    const recorded = await recordIntents(pool, 'b', [fresh, lost], { batchId, chunkNo: 0 });
    assert.deepEqual([...recorded], [fresh.serial.toString('hex')], 'the device enrolled online keeps its live intent');
    const row = await pool.query<{ batch_id: string; chunk_no: number; not_before: Date; site: string }>('SELECT batch_id, chunk_no, not_before, site FROM issuance_intents WHERE serial = $1', [fresh.serial]);
    assert.deepEqual(row.rows, [{ batch_id: batchId, chunk_no: 0, not_before: notBefore, site: 'b' }]);
    const device = await pool.query<{ batch_id: string }>('SELECT batch_id FROM devices WHERE eui64 = $1', [fresh.eui64]);
    assert.deepEqual(device.rows, [{ batch_id: batchId }], 'a device first seen in a batch is recorded with it');
    const audit = await pool.query("SELECT 1 FROM audit_events WHERE action = 'issuance.intent' AND subject = ANY($1::text[])", [[fresh.serial.toString('hex'), online.serial.toString('hex')]]);
    assert.equal(audit.rowCount, 1, 'only the online intent has an audit row of its own');
    await pool.query('UPDATE issuance_intents SET active = false, released_at = clock_timestamp(), released_reason = $2 WHERE serial = ANY($1::bytea[])', [[fresh.serial, online.serial], 'test cleanup']);
  });
});
