import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { FleetConfig } from '@fleetpki/core';
import { DEFAULT_BATCH_LIMITS } from '@fleetpki/ca';
import { FleetApiClient, type BatchView, type ResultLine } from '@fleetpki/client';
import { openSiteDaemons } from '@fleetpki/daemons';
import { createIssuerRuntime, type IssuerRuntime } from '@fleetpki/issuer-api';
import { generateManifest, signManifestFile, syntheticEui64, syntheticRunPrefix } from '@fleetpki/manifest';
import { setManufacturerManifestKey, type Pool } from '@fleetpki/store';
import { generateDeviceKeys, readTlv, toPem } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { createToken, ensureCa, writeCaFile, openssl, opensslCsr, siteAPool, type TestCa } from './support/ca.js';
import { ensureSites, waitFor } from './support/sites.js';

const MAKER = 'batch-maker';
let config: FleetConfig;
let pool: Pool;
let ca: TestCa;
let runtime: IssuerRuntime;
let client: FleetApiClient;
let factoryKey: ReturnType<typeof generateKeyPairSync>;
const workers: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const w = startService(config, 'batch-worker', { FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'error' });
  workers.push(w);
  return w;
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  ca = await ensureCa(config, pool);
  const token = await createToken(pool, 'factory', MAKER);
  factoryKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await setManufacturerManifestKey(pool, MAKER, factoryKey.publicKey.export({ format: 'der', type: 'spki' }));
  runtime = await createIssuerRuntime({ ...config, site: 'a' }, { logger: false, hsmSessions: 2, poolSize: 6, batchLimits: { ...DEFAULT_BATCH_LIMITS, maxBytes: 3 * 1024 * 1024, reportLines: 20 } });
  await runtime.app.listen({ host: '127.0.0.1', port: 0 });
  client = new FleetApiClient(`http://127.0.0.1:${(runtime.app.server.address() as AddressInfo).port}`, token);
});

after(async () => {
  await Promise.all(workers.map(stopProcess));
  await runtime?.close();
  await pool?.end();
});

function file(name: string, content: string | Buffer): string {
  return writeCaFile(ca, name, content);
}

async function manifest(devices: number, options: { roles?: ('digitalSignature' | 'keyAgreement')[]; keyForm?: 'csr' | 'publicKey' } = {}): Promise<string> {
  const out = join(ca.dir, `m-${randomBytes(4).toString('hex')}.ndjson`);
  await generateManifest({ devices, out, roles: options.roles ?? ['digitalSignature'], keyForm: options.keyForm ?? 'csr', threads: 2, euiPrefix: syntheticRunPrefix(MAKER) });
  return out;
}

async function results(batchId: string, afterCursor?: number): Promise<ResultLine[]> {
  const lines: ResultLine[] = [];
  for await (const line of client.batchResults(batchId, afterCursor)) lines.push(line);
  return lines;
}

async function tableCounts(): Promise<{ batches: number; items: number; devices: number; intents: number }> {
  const { rows } = await pool.query<{ batches: number; items: number; devices: number; intents: number }>(
    'SELECT (SELECT count(*)::int FROM batches) AS batches, (SELECT count(*)::int FROM batch_items) AS items, (SELECT count(*)::int FROM devices) AS devices, (SELECT count(*)::int FROM issuance_intents) AS intents',
  );
  return rows[0]!;
}

/** Every (device, role) of the batch has exactly one certificate, and every intent has its certificate. */
async function assertExactlyOnce(batchId: string, expected: number): Promise<void> {
  const { rows } = await pool.query<{ certs: number; dup: number; orphans: number; pairs: number }>(
    `SELECT (SELECT count(*)::int FROM certificates WHERE batch_id = $1) AS certs,
            (SELECT count(*)::int FROM (SELECT 1 FROM certificates WHERE batch_id = $1 GROUP BY eui64, key_role HAVING count(*) > 1) d) AS dup,
            (SELECT count(*)::int FROM issuance_intents n WHERE n.batch_id = $1 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = n.serial)) AS orphans,
            (SELECT count(DISTINCT (eui64, key_role))::int FROM batch_items WHERE batch_id = $1) AS pairs`,
    [batchId],
  );
  assert.deepEqual(rows[0], { certs: expected, dup: 0, orphans: 0, pairs: expected });
}

describe('factory batch enrolment', () => {
  let completed: BatchView;

  it('issues a batch of 2,500 devices x 2 key roles; every certificate verifies against the chain', async () => {
    startWorker();
    const path = await manifest(2_500, { roles: ['digitalSignature', 'keyAgreement'] });
    const { batch, created } = await client.submitBatch(path);
    assert.equal(created, true);
    assert.equal(batch.devices, 2_500);
    assert.equal(batch.certificatesRequested, 5_000);
    assert.equal(batch.chunks.total, 5);
    completed = await waitFor('batch complete', async () => {
      const b = await client.getBatch(batch.id);
      return b.status === 'complete' ? b : undefined;
    }, 120_000, 250);
    assert.equal(completed.issued, 5_000);
    assert.equal(completed.failed, 0);
    await assertExactlyOnce(batch.id, 5_000);

    const lines = await results(batch.id);
    const chain = lines[0]!;
    assert.equal(chain.type, 'chain');
    const certs = lines.filter((l): l is Extract<ResultLine, { type: 'certificate' }> => l.type === 'certificate');
    assert.equal(certs.length, 5_000);
    assert.deepEqual(lines[lines.length - 1], { type: 'end', cursor: certs[certs.length - 1]!.cursor, complete: true });
    // node:crypto on all of them: the signature over the TBS with the issuing CA's key.
    const issuingKey = createPublicKey(chain.type === 'chain' ? chain.certificates[0]! : '');
    for (const c of certs) {
      const der = Buffer.from(c.certificate, 'base64');
      const { tbs, signature } = splitCertificate(der);
      assert.ok(verify('sha256', tbs, issuingKey, signature), `certificate ${c.serial} verifies`);
    }
    // OpenSSL on a sample.
    for (const c of certs.filter((_, i) => i % 500 === 0)) {
      const path = file(`${c.serial}.pem`, toPem(Buffer.from(c.certificate, 'base64')));
      assert.match(openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.issuingPem, path]), /: OK/);
      assert.match(openssl(['x509', '-in', path, '-noout', '-text']), new RegExp(`X509v3 Key Usage: critical\\n\\s*${c.keyRole === 'digitalSignature' ? 'Digital Signature' : 'Key Agreement'}\\n`));
    }
  });

  it('resumes the results from a cursor', async () => {
    const all = (await results(completed.id)).filter((l) => l.type === 'certificate');
    const cursor = (all[2_999] as { cursor: number }).cursor;
    const rest = (await results(completed.id, cursor)).filter((l) => l.type === 'certificate');
    assert.equal(rest.length, 2_000);
    assert.deepEqual(rest[0], all[3_000]);
  });

  it('returns the same batch for the same manifest, and for the same idempotency key', async () => {
    const path = await manifest(20);
    const first = await client.submitBatch(path);
    const again = await client.submitBatch(path);
    assert.deepEqual([first.created, again.created], [true, false]);
    assert.equal(again.batch.id, first.batch.id);
    const key = `key-${randomBytes(6).toString('hex')}`;
    const keyed = await client.submitBatch(await manifest(10), { idempotencyKey: key });
    const retried = await client.submitBatch(await manifest(10), { idempotencyKey: key });
    assert.deepEqual([keyed.created, retried.created], [true, false]);
    assert.equal(retried.batch.id, keyed.batch.id);
  });

  it('survives a worker killed with SIGKILL and a flushed Redis mid-batch: no device missing, none twice', async () => {
    const second = startWorker();
    const path = await manifest(6_000);
    const { batch } = await client.submitBatch(path);
    await waitFor('a first chunk done', async () => ((await client.getBatch(batch.id)).chunks.done >= 1 ? true : undefined), 60_000, 50);
    for (const w of workers) w.kill('SIGKILL');
    execFileSync('redis-cli', ['-p', String(new URL(config.sites.a.redisUrl).port), 'FLUSHALL']);
    const mid = await client.getBatch(batch.id);
    assert.ok(mid.status === 'issuing', `killed mid-batch (${mid.chunks.done}/${mid.chunks.total} chunks done)`);
    void second;
    startWorker();
    startWorker();
    // The chunks Redis lost are queued again by the daemons' batch-outbox job (the workers only pull).
    const outbox = await openSiteDaemons({ ...config, site: 'a' }, { only: ['batch-outbox'], logger: false });
    try {
      outbox.start();
      const done = await waitFor('batch complete after the crash', async () => {
        const b = await client.getBatch(batch.id);
        return b.status === 'complete' ? b : undefined;
      }, 180_000, 250);
      assert.equal(done.issued, 6_000);
      await assertExactlyOnce(batch.id, 6_000);
    } finally {
      await outbox.close();
    }
  });

  it('accepts raw public keys only from a manifest signed by the factory key', async () => {
    const path = await manifest(50, { keyForm: 'publicKey' });
    const before = await tableCounts();
    await assert.rejects(client.submitBatch(path), (err: Error & { code?: string; details?: { errors: { line: number; code: string }[] } }) => {
      assert.equal(err.code, 'MANIFEST_UNSIGNED');
      assert.equal(err.details!.errors[0]!.line, 1);
      return true;
    });
    const forged = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await assert.rejects(client.submitBatch(path, { signature: await signManifestFile(path, forged) }), { code: 'MANIFEST_SIGNATURE_INVALID' });
    assert.deepEqual(await tableCounts(), before, 'nothing written');
    const { batch } = await client.submitBatch(path, { signature: await signManifestFile(path, factoryKey.privateKey) });
    const done = await waitFor('signed batch complete', async () => {
      const b = await client.getBatch(batch.id);
      return b.status === 'complete' ? b : undefined;
    }, 60_000, 200);
    assert.equal(done.issued, 50);
  });

  it('skips invalid lines when asked, reports them, and issues the rest', async () => {
    const [a, b] = generateDeviceKeys(2);
    const eui = () => syntheticEui64(MAKER);
    const dup = eui();
    const text = [
      JSON.stringify({ eui64: dup, keys: [{ role: 'digitalSignature', csr: a!.csr.toString('base64') }] }),
      '{"eui64": "00112233',
      JSON.stringify({ eui64: dup, keys: [{ role: 'digitalSignature', csr: b!.csr.toString('base64') }] }),
      JSON.stringify({ eui64: eui(), keys: [{ role: 'keyAgreement', csr: b!.csr.toString('base64') }] }),
    ].join('\n');
    const { batch } = await client.submitBatch(file('skip.ndjson', text), { onInvalid: 'skip' });
    assert.equal(batch.skippedLines, 2);
    assert.deepEqual(batch.skipped.map((s) => [s.line, s.code]), [[2, 'MANIFEST_LINE_MALFORMED'], [3, 'DUPLICATE_IN_BATCH']]);
    assert.equal(batch.certificatesRequested, 2);
  });

  it('refuses a CSR whose signature fails in the worker, and reports the line', async () => {
    const [k] = generateDeviceKeys(1);
    const csr = Buffer.from(k!.csr);
    csr[csr.length - 3] = csr[csr.length - 3]! ^ 1;
    const text = JSON.stringify({ eui64: syntheticEui64(MAKER), keys: [{ role: 'digitalSignature', csr: csr.toString('base64') }] });
    const { batch } = await client.submitBatch(file('badsig.ndjson', text));
    const done = await waitFor('batch done', async () => {
      const b = await client.getBatch(batch.id);
      return b.status === 'complete' ? b : undefined;
    }, 60_000, 200);
    assert.equal(done.issued, 0);
    assert.equal(done.failed, 1);
    assert.deepEqual(done.errors.map((e) => [e.line, e.code]), [[1, 'CSR_SIGNATURE_INVALID']]);
  });
});

describe('bad manifests: a clear report and no partial batch', () => {
  const good = () => {
    const [k] = generateDeviceKeys(1);
    return JSON.stringify({ eui64: syntheticEui64(MAKER), deviceType: 'meter-x', keys: [{ role: 'digitalSignature', csr: k!.csr.toString('base64') }] });
  };
  const p384Csr = () => opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']).replace(/-----[^-]+-----|\s/g, '');
  const cases: { name: string; body: () => string | Buffer; code: string; line?: number; lineCode?: string; format?: 'csv' }[] = [
    { name: 'truncated line', body: () => [good(), good().slice(0, 80), good()].join('\n'), code: 'MANIFEST_REJECTED', line: 2, lineCode: 'MANIFEST_LINE_MALFORMED' },
    { name: 'bad base64', body: () => [good(), JSON.stringify({ eui64: 'FC00000000000001', keys: [{ role: 'digitalSignature', csr: '!!!not base64!!!' }] })].join('\n'), code: 'MANIFEST_REJECTED', line: 2, lineCode: 'CSR_MALFORMED' },
    {
      name: 'duplicate device',
      body: () => {
        const line = good();
        return [line, good(), line].join('\n');
      },
      code: 'MANIFEST_REJECTED',
      line: 3,
      lineCode: 'DUPLICATE_IN_BATCH',
    },
    { name: 'wrong curve', body: () => [good(), JSON.stringify({ eui64: 'FC00000000000002', keys: [{ role: 'digitalSignature', csr: p384Csr() }] })].join('\n'), code: 'MANIFEST_REJECTED', line: 2, lineCode: 'KEY_TYPE_UNSUPPORTED' },
    { name: 'bad EUI-64', body: () => [JSON.stringify({ eui64: 'XYZ', keys: [] })].join('\n'), code: 'MANIFEST_REJECTED', line: 1, lineCode: 'EUI64_INVALID' },
    { name: 'unsigned raw keys', body: () => JSON.stringify({ eui64: 'FC00000000000003', keys: [{ role: 'digitalSignature', publicKey: generateDeviceKeys(1)[0]!.publicKeySpki.toString('base64') }] }), code: 'MANIFEST_UNSIGNED', line: 1, lineCode: 'MANIFEST_UNSIGNED' },
    { name: 'CSV with an unknown column', body: () => 'eui64,keyRole,colour\nFC00000000000004,digitalSignature,red', code: 'MANIFEST_REJECTED', line: 1, lineCode: 'MANIFEST_HEADER_INVALID', format: 'csv' },
    { name: 'oversized file (limit 3 MiB here)', body: () => Buffer.alloc(4 * 1024 * 1024, `${good()}\n`), code: 'MANIFEST_TOO_LARGE' },
    { name: '10 MB single line', body: () => Buffer.alloc(10 * 1024 * 1024, 'A'), code: 'MANIFEST_LINE_TOO_LONG' },
    { name: 'empty manifest', body: () => '\n\n', code: 'MANIFEST_EMPTY' },
  ];
  for (const c of cases) {
    it(`${c.name} -> ${c.code}`, async () => {
      const before = await tableCounts();
      const path = file(`bad-${randomBytes(3).toString('hex')}.${c.format ?? 'ndjson'}`, c.body());
      await assert.rejects(client.submitBatch(path, c.format ? { format: c.format } : {}), (err: Error & { code?: string; httpStatus?: number; details?: { errors?: { line: number; code: string; message: string }[]; line?: number } }) => {
        assert.equal(err.code, c.code, err.message);
        assert.ok(err.httpStatus! >= 400 && err.httpStatus! < 500);
        if (c.line !== undefined) {
          const first = err.details!.errors![0]!;
          assert.equal(first.line, c.line, JSON.stringify(err.details));
          assert.equal(first.code, c.lineCode);
          assert.ok(first.message.length > 5);
        }
        return true;
      });
      assert.deepEqual(await tableCounts(), before, 'no partial batch');
    });
  }

  it('CSV manifests are accepted too', async () => {
    const [k] = generateDeviceKeys(1);
    const text = `eui64,deviceType,keyRole,csr\n${syntheticEui64(MAKER)},meter-x,keyAgreement,${k!.csr.toString('base64')}\n`;
    const { batch } = await client.submitBatch(file('ok.csv', text));
    assert.equal(batch.certificatesRequested, 1);
  });
});

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING } */
function splitCertificate(der: Buffer): { tbs: Buffer; signature: Buffer } {
  const outer = readTlv(der, 0);
  const tbs = readTlv(der, outer.contentStart);
  const algorithm = readTlv(der, tbs.end);
  const signature = readTlv(der, algorithm.end);
  return { tbs: der.subarray(tbs.start, tbs.end), signature: der.subarray(signature.contentStart + 1, signature.end) };
}
