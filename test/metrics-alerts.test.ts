import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { CA_IDS } from '@fleetpki/ca';
import type { FleetConfig } from '@fleetpki/core';
import { observeHsm, openSiteKeyStore, Pkcs11Probes } from '@fleetpki/hsm';
import { hsmMetrics, processRegistry, serveMetrics } from '@fleetpki/metrics';
import { ChunkQueue, redisLink } from '@fleetpki/queue';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { ensureCa, siteAPool } from './support/ca.js';
import { TestPrometheus } from './support/prometheus.js';
import { ensureSites, localUrl, waitFor, type Pool } from './support/sites.js';

/**
 * The alert rules of infra/prometheus/alerts.yml against real faults, read by a real Prometheus
 * (Debian's) scraping the real processes each second: an HSM key gone under its signer, the batch
 * worker stopped with chunks waiting, a CRL whose nextUpdate draws near while no publisher runs. An
 * alert "pending" means its expression holds (its `for:` has not run out, which the promtool unit
 * tests of the rules cover with synthetic series).
 */
let config: FleetConfig;
let pool: Pool;
let prometheus: TestPrometheus;
const ports = (c: FleetConfig) => ({ hsm: c.sites.a.apiPort + 560, daemons: c.sites.a.apiPort + 561, worker: c.sites.a.apiPort + 562, status: c.sites.a.statusPort + 563, prometheus: c.sites.a.apiPort + 564 });

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  const p = ports(config);
  prometheus = await TestPrometheus.start(p.prometheus, [
    { address: `127.0.0.1:${p.hsm}`, site: 'a', process: 'issuer-api' },
    { address: `${config.sites.a.host}:${p.daemons}`, site: 'a', process: 'daemons' },
    { address: `${config.sites.a.host}:${p.worker}`, site: 'a', process: 'batch-worker' },
    { address: new URL(localUrl(config, 'status', p.status)).host, site: 'a', process: 'status-responder' },
  ]);
});

after(async () => {
  await prometheus?.stop();
  await pool?.end();
});

describe('alerts over real faults', () => {
  it("HSM faults under a signer: a login dropped is taken again (counted); a key gone raises the error counter by its code and FleetpkiHsmErrors' expression, not the token's health", async () => {
    const registry = processRegistry('issuer-api', 'a');
    observeHsm(hsmMetrics(registry));
    const server: Server = await serveMetrics(registry, '127.0.0.1', ports(config).hsm);
    const store = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
    const probes = new Pkcs11Probes(store);
    const label = `metrics-fault-${randomBytes(3).toString('hex')}`;
    try {
      // A key made as before the key-protection rules (destroyable), so that it can be taken away.
      probes.generateLegacySigningKey(label);
      const signer = await store.getSigner(label);
      await signer.sign(Buffer.from('before'));
      // The token logs the application out under the signer: the pool logs in again and signs.
      probes.logoutUnderneath();
      await signer.sign(Buffer.from('after a logout'));
      await waitFor('a scrape with the signatures and the re-login', async () => ((await prometheus.query('fleetpki_hsm_relogins_total >= 1 and on() sum(fleetpki_hsm_operations_total{kind="sign"}) >= 2')).length > 0 ? true : undefined), 20_000, 250);
      assert.deepEqual(await prometheus.query('fleetpki_hsm_token_up == 0'), [], 'the token is healthy');
      // The fault: the key is destroyed on the token under the signer holding its handle.
      await store.destroyKey(label);
      const codes = new Set<string>();
      const failing = setInterval(() => void signer.sign(randomBytes(16)).then(() => codes.add('signed'), (err: { code?: string }) => codes.add(err.code ?? 'no code')), 300);
      try {
        const alert = await prometheus.waitForAlert('FleetpkiHsmErrors', { site: 'a', process: 'issuer-api', kind: 'sign' }, 60_000);
        assert.ok(['pending', 'firing'].includes(alert.state));
      } finally {
        clearInterval(failing);
      }
      assert.ok(codes.size > 0 && !codes.has('signed'), 'no signature without the key');
      assert.ok([...codes].every((c) => /^HSM_[A-Z_]+$/.test(c)), `the failures carry stable HSM codes: ${[...codes].join(', ')}`);
      const errors = await prometheus.query('sum(fleetpki_hsm_errors_total{kind="sign"}) by (code)');
      assert.ok(errors.length > 0 && errors.every((e) => codes.has(e.metric.code!)), `the error counter is by the code the caller saw: ${JSON.stringify(errors)}`);
      if ([...codes].every((c) => c === 'HSM_KEY_NOT_FOUND')) assert.deepEqual(await prometheus.query('fleetpki_hsm_token_up == 0'), [], "one key's absence is not the token's failure");
    } finally {
      observeHsm(undefined);
      server.close();
      if (await store.hasKey(label)) await store.destroyKey(label);
      await store.close();
    }
  });

  it('the batch worker stopped with a chunk waiting: FleetpkiBatchQueueStalled (no worker) holds; not while the worker ran', async () => {
    const p = ports(config);
    const env = { FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'error' };
    const daemons = startService(config, 'daemons', { ...env, FLEETPKI_DAEMONS: 'batch-outbox', FLEETPKI_METRICS_PORT: String(p.daemons) });
    const worker = startService(config, 'batch-worker', { ...env, FLEETPKI_METRICS_PORT: String(p.worker) });
    const queue = new ChunkQueue(redisLink(config, config.sites.a), config.pgDatabase);
    // A job no chunk row backs: the queue alone is under test, and no worker may take it.
    const job = { batchId: randomUUID(), chunkNo: 0 };
    try {
      await waitForHttp(`http://${config.sites.a.host}:${p.daemons}/healthz`);
      await waitForHttp(`http://${config.sites.a.host}:${p.worker}/metrics`);
      await waitFor('the worker counted by the daemons', async () => ((await prometheus.query('fleetpki_batch_workers_connected{process="daemons"} >= 1')).length > 0 ? true : undefined), 30_000, 500);
      assert.equal((await prometheus.alerts()).filter((a) => a.labels.alertname === 'FleetpkiBatchQueueStalled' && a.labels.cause === 'no-worker').length, 0, 'silent while a worker runs');
      await stopProcess(worker);
      await queue.enqueue([job]);
      const alert = await prometheus.waitForAlert('FleetpkiBatchQueueStalled', { site: 'a', cause: 'no-worker' }, 60_000);
      assert.ok(['pending', 'firing'].includes(alert.state));
      const waiting = await prometheus.query('fleetpki_batch_queue_jobs{state="waiting",process="daemons"}');
      assert.ok(waiting[0]!.value >= 1, 'the daemons report the waiting chunk with no worker left to report it');
    } finally {
      await queue.remove([job]).catch(() => undefined);
      await queue.close();
      await stopProcess(worker);
      await stopProcess(daemons);
    }
  });

  it('a CRL whose nextUpdate draws near while no publisher runs: FleetpkiCrlNearNextUpdate holds for that shard only', async () => {
    const p = ports(config);
    const env = { FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'error', FLEETPKI_STATUS_PORT_A: String(p.status), FLEETPKI_CRL_BASE_URL: config.crlBaseUrl };
    // The publisher runs once, so that the shard has a CRL, and is then held back (stopped).
    const publisher = startService(config, 'daemons', { ...env, FLEETPKI_DAEMONS: 'crl-publisher', FLEETPKI_METRICS_PORT: '0' });
    let original: { ca_id: string; shard: number; this_update: Date; next_update: Date } | undefined;
    try {
      original = await waitFor('a full CRL of shard 0', async () => (await pool.query<{ ca_id: string; shard: number; this_update: Date; next_update: Date }>(`SELECT ca_id, shard, this_update, next_update FROM crls WHERE shard = 0 AND kind = 'full' AND ca_id = $1`, [CA_IDS.deviceIssuing])).rows[0], 60_000, 500);
    } finally {
      await stopProcess(publisher);
    }
    const responder = startService(config, 'status-responder', env);
    try {
      await waitForHttp(`${localUrl(config, 'status', p.status)}/healthz`);
      await waitFor('the CRLs on a scrape', async () => ((await prometheus.query(`fleetpki_crl_next_update_seconds_left{ca="${original!.ca_id}",shard="0",kind="full"}`)).length > 0 ? true : undefined), 30_000, 500);
      assert.equal((await prometheus.alerts()).filter((a) => a.labels.alertname === 'FleetpkiCrlNearNextUpdate').length, 0, 'silent with fresh CRLs');
      // What a day without the publisher leaves: the CRL issued 23 h ago, its nextUpdate 1 h away
      // (under 25 % of its 24 h validity). The row's times are moved rather than the clock.
      await pool.query(`UPDATE crls SET this_update = now() - interval '23 hours', next_update = now() + interval '1 hour' WHERE ca_id = $1 AND shard = 0 AND kind = 'full'`, [original!.ca_id]);
      const alert = await prometheus.waitForAlert('FleetpkiCrlNearNextUpdate', { site: 'a', ca: original!.ca_id, shard: '0', kind: 'full' }, 60_000);
      assert.ok(['pending', 'firing'].includes(alert.state));
      assert.deepEqual((await prometheus.alerts()).filter((a) => a.labels.alertname === 'FleetpkiCrlNearNextUpdate').map((a) => a.labels.shard), ['0'], 'only the shard held back');
    } finally {
      if (original) await pool.query('UPDATE crls SET this_update = $2, next_update = $3 WHERE ca_id = $1 AND shard = 0 AND kind = $4', [original.ca_id, original.this_update, original.next_update, 'full']);
      await stopProcess(responder);
    }
  });
});
