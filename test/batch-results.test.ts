import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { ChunkIssuer, loadSiteIssuer } from '@fleetpki/ca';
import { FleetApiClient, type ResultLine } from '@fleetpki/client';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, syntheticRunPrefix } from '@fleetpki/manifest';
import type { Pool } from '@fleetpki/store';
import { createToken, ensureCa, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites } from './support/sites.js';

/**
 * Results of a batch still issuing. Chunks finish out of order (several workers); a download that
 * listed a later chunk before an earlier one finished, and was resumed from its cursor, skipped the
 * earlier chunk for good. Here no worker runs: the test issues the chunks itself, in the order it
 * chooses, through the same ChunkIssuer the workers use.
 */
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let client: FleetApiClient;
let issuer: ChunkIssuer;

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  const token = await createToken(pool, 'factory', 'results-maker');
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 1, poolSize: 4 });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  client = new FleetApiClient(`http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`, token);
  const site = await loadSiteIssuer({ ...config, site: 'a' }, pool, runtime.keyStore);
  issuer = ChunkIssuer.forPool(pool, site.ca, 'a', site.serialPrefix);
});

after(async () => {
  await runtime?.close();
  await pool?.end();
});

async function read(batchId: string, after?: number): Promise<{ certificates: number[]; end: Extract<ResultLine, { type: 'end' }> }> {
  const certificates: number[] = [];
  let end: Extract<ResultLine, { type: 'end' }> | undefined;
  for await (const line of client.batchResults(batchId, after)) {
    if (line.type === 'certificate') certificates.push(line.cursor);
    if (line.type === 'end') end = line;
  }
  assert.ok(end, 'an end line');
  return { certificates, end };
}

describe('batch results while the batch issues', () => {
  it('lists only chunks finished in order, so resuming from the cursor never skips one; following gets every certificate once', async () => {
    const path = join(ca.dir, `results-${randomBytes(4).toString('hex')}.ndjson`);
    await generateManifest({ devices: 2_500, out: path, roles: ['digitalSignature'], keyForm: 'csr', threads: 2, euiPrefix: syntheticRunPrefix('results-maker') });
    const { batch } = await client.submitBatch(path, {});
    assert.equal(batch.status, 'issuing');
    const followed: ResultLine[] = [];
    const following = (async () => {
      for await (const line of client.followBatchResults(batch.id, { intervalMs: 100 })) followed.push(line);
    })();

    await issuer.issue(batch.id, 1);
    const early = await read(batch.id);
    assert.deepEqual(early.certificates, [], 'chunk 1 is done but chunk 0 is not: nothing is listed yet');
    assert.deepEqual(early.end, { type: 'end', cursor: -1, complete: false });

    await issuer.issue(batch.id, 0);
    const middle = await read(batch.id, early.end.cursor);
    assert.equal(middle.certificates.length, 2_000, 'chunks 0 and 1');
    assert.deepEqual(middle.certificates, [...middle.certificates].sort((a, b) => a - b));
    assert.deepEqual(middle.end, { type: 'end', cursor: 1_999, complete: false });

    await issuer.issue(batch.id, 2);
    const last = await read(batch.id, middle.end.cursor);
    assert.equal(last.certificates.length, 500);
    assert.deepEqual(last.end, { type: 'end', cursor: 2_499, complete: true });

    await following;
    const cursors = followed.filter((l) => l.type === 'certificate').map((l) => (l as { cursor: number }).cursor);
    assert.equal(cursors.length, 2_500, 'every certificate, once');
    assert.equal(new Set(cursors).size, 2_500);
    assert.equal(followed[0]?.type, 'chain');
    assert.deepEqual(followed[followed.length - 1], { type: 'end', cursor: 2_499, complete: true });
  });
});
