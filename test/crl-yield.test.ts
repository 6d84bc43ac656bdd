import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CRL_YIELD_TO_OCSP_MS, crlShardOf } from '@fleetpki/ca';
import { getCrl } from '@fleetpki/store';
import { opensslAsync } from './support/ca.js';
import { openOcspTestbed, type OcspTestbed } from './support/ocsp-testbed.js';
import { preProduceFor } from './support/status.js';

/**
 * The CRL publisher yields to OCSP re-signing (issue 37): while the status responder has not yet
 * re-signed a fresh revocation (no stored SHA-1 "revoked" response yet), the daemon's pass leaves
 * the dirty shard for later, as when both ran in one process; at most CRL_YIELD_TO_OCSP_MS after the
 * shard was dirtied it publishes anyway (a responder that is down must not hold CRLs back), and once
 * the responder has re-signed, at once. A direct publishDue() (operators, tests) never waits. Nothing
 * runs by itself here (tickEveryMs 0): each step is driven.
 */

let bed: OcspTestbed;

before(async () => {
  bed = await openOcspTestbed('crl-yield');
});

after(async () => {
  await bed?.close();
});

describe('the CRL publisher yields to the re-signing of revocations', () => {
  it('defers a freshly dirtied shard while its revocation awaits OCSP, publishes it when overdue or once re-signed', async () => {
    const { status, pool, officer, ca } = bed;
    const publisher = status.publisher!;
    const device = await bed.enrolDevice();
    await preProduceFor(status, pool, [device.serial]);
    const serial = Buffer.from(device.serial, 'hex');
    const shard = crlShardOf(serial, publisher.shards);
    // Every shard published once: a shard with no CRL at all is due whatever else happens.
    await publisher.publishAll();
    assert.equal((await officer.revoke({ serials: [device.serial] }, 'keyCompromise')).revoked, 1);

    const yielding = { yieldToOcspMs: CRL_YIELD_TO_OCSP_MS };
    assert.ok((await publisher.dueShards(new Date())).includes(shard), 'without yielding, the dirty shard is due at once');
    assert.ok(!(await publisher.dueShards(new Date(), yielding)).includes(shard), `shard ${shard} was published while its revocation awaited its OCSP response`);
    const overdue = new Date(Date.now() + CRL_YIELD_TO_OCSP_MS + 1_000);
    assert.ok((await publisher.dueShards(overdue, yielding)).includes(shard), 'a shard dirty for longer than the yield is published whatever OCSP does');

    // One pass of the responder's revocation loop (it re-signs), then of the daemons (the crl-publisher
    // job, yielding): the shard no longer waits, and is published in the same tick.
    await status.tick();
    const { rows } = await pool.query<{ status: string }>("SELECT status FROM ocsp_responses WHERE serial = $1 AND hash_alg = 'sha1'", [serial]);
    assert.equal(rows[0]?.status, 'revoked');
    const { rows: issued } = await pool.query<{ ca_id: string }>('SELECT ca_id FROM certificates WHERE serial = $1', [serial]);
    const caId = issued[0]!.ca_id;
    const { rows: dirty } = await pool.query('SELECT 1 FROM crl_dirty WHERE ca_id = $1 AND shard = $2', [caId, shard]);
    assert.equal(dirty.length, 0, `the crl-publisher daemon left shard ${shard} dirty after the revocation was re-signed`);
    const crl = await getCrl(pool, caId, shard, 'full');
    assert.ok(crl, `no full CRL for shard ${shard}`);
    const file = join(ca.dir, `crl-yield-${shard}.crl`);
    writeFileSync(file, crl.der);
    assert.match(await opensslAsync(['crl', '-inform', 'DER', '-in', file, '-CAfile', ca.issuingPem, '-noout', '-verify']), /verify OK/);
    const text = await opensslAsync(['crl', '-inform', 'DER', '-in', file, '-noout', '-text']);
    assert.ok(text.toUpperCase().includes(device.serial.toUpperCase()), `the CRL of shard ${shard} does not list ${device.serial}`);
  });
});
