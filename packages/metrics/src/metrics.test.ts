import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchQueueMetrics, hsmMetrics, leaseMetrics, mayScrape, metricsPort, processRegistry, scraperList, siteFiguresMetrics, statusMetrics } from './index.js';
import { sharedRead } from './scrape-read.js';

/** The value of one series in a scrape's text, or undefined when it is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('metrics', () => {
  it('every series carries its site and process', async () => {
    const registry = processRegistry('daemons', 'b');
    const text = await registry.metrics();
    assert.ok(sample(text, 'process_resident_memory_bytes', { site: 'b', process: 'daemons' })! > 0, 'default process metrics, labelled');
    assert.ok(sample(text, 'nodejs_eventloop_lag_seconds', { site: 'b', process: 'daemons' }) !== undefined);
  });

  it('HSM operations, failures by code, re-logins and token health', async () => {
    const registry = processRegistry('issuer-api', 'a');
    const hsm = hsmMetrics(registry);
    hsm.operation({ key: 'fpd1', kind: 'sign', seconds: 0.002 });
    hsm.operation({ key: 'fpd1', kind: 'sign', seconds: 0.004 });
    hsm.failure({ key: 'fpd1', kind: 'sign', code: 'HSM_OPERATION_FAILED' });
    hsm.relogin();
    hsm.token({ token: 'fleetpki-a', up: false });
    const text = await registry.metrics();
    assert.equal(sample(text, 'fleetpki_hsm_operations_total', { key: 'fpd1', kind: 'sign' }), 2);
    assert.equal(sample(text, 'fleetpki_hsm_errors_total', { code: 'HSM_OPERATION_FAILED' }), 1);
    assert.equal(sample(text, 'fleetpki_hsm_operation_duration_seconds_count', { kind: 'sign' }), 2);
    assert.equal(sample(text, 'fleetpki_hsm_relogins_total'), 1);
    assert.equal(sample(text, 'fleetpki_hsm_token_up', { token: 'fleetpki-a' }), 0);
  });

  it('CRL figures per CA, shard and kind; a CA with nothing unsigned shows 0', async () => {
    const registry = processRegistry('status-responder', 'a');
    const now = Date.now();
    statusMetrics(registry, async () => ({
      crls: [{ caId: 'device-issuing-1', shard: 3, kind: 'full', crlNumber: 42n, thisUpdate: new Date(now - 3_600_000), nextUpdate: new Date(now + 600_000) }],
      unsigned: [],
      caIds: ['device-issuing-1'],
    }));
    const text = await registry.metrics();
    assert.equal(sample(text, 'fleetpki_crl_number', { ca: 'device-issuing-1', shard: '3', kind: 'full' }), 42);
    const left = sample(text, 'fleetpki_crl_next_update_seconds_left', { shard: '3' })!;
    assert.ok(left > 590 && left <= 600, `seconds left ${left}`);
    assert.equal(sample(text, 'fleetpki_revocations_unsigned', { ca: 'device-issuing-1' }), 0);
  });

  it('a failed read leaves the labelled gauges without series and is counted', async () => {
    const registry = processRegistry('batch-worker', 'a');
    batchQueueMetrics(registry, async () => {
      throw new Error('redis down');
    });
    const text = await registry.metrics();
    assert.equal(sample(text, 'fleetpki_batch_queue_jobs'), undefined);
    assert.equal(sample(text, 'fleetpki_metrics_read_failures'), 1);
  });

  it("a lease's view: active, role, seconds left, epoch", async () => {
    const registry = processRegistry('issuer-api', 'a');
    leaseMetrics(registry, () => ({ issuing: true, role: 'active', epoch: 7, until: new Date(Date.now() + 4_000).toISOString() }));
    const text = await registry.metrics();
    assert.equal(sample(text, 'fleetpki_site_active'), 1);
    assert.equal(sample(text, 'fleetpki_site_role', { role: 'active' }), 1);
    assert.equal(sample(text, 'fleetpki_site_role', { role: 'standby' }), 0);
    assert.equal(sample(text, 'fleetpki_site_epoch'), 7);
    const left = sample(text, 'fleetpki_site_lease_seconds_left')!;
    assert.ok(left > 3 && left <= 4, `lease left ${left}`);
  });

  it('replication figures only on the primary', async () => {
    const registry = processRegistry('site-agent', 'b');
    siteFiguresMetrics(registry, async () => ({ primary: false, standbys: [], archiver: { failedCount: 0, lastSuccessSeconds: null }, audit: { lastSealedSeq: 9, unsealed: 2, oldestUnsealedSeconds: 30 }, drills: [] }));
    const text = await registry.metrics();
    assert.equal(sample(text, 'fleetpki_database_primary'), 0);
    assert.equal(sample(text, 'fleetpki_replication_lag_bytes'), undefined, 'no standby, no series');
    assert.equal(sample(text, 'fleetpki_audit_last_sealed_sequence'), 9);
    assert.equal(sample(text, 'fleetpki_audit_oldest_unsealed_seconds'), 30);
  });

  it('FLEETPKI_METRICS_PORT overrides the configured port; 0 means none; junk is refused by name', () => {
    assert.equal(metricsPort(9101, {}), 9101);
    assert.equal(metricsPort(9101, { FLEETPKI_METRICS_PORT: '0' }), undefined);
    assert.equal(metricsPort(undefined, { FLEETPKI_METRICS_PORT: '19999' }), 19999);
    assert.throws(() => metricsPort(undefined, { FLEETPKI_METRICS_PORT: 'x' }), /FLEETPKI_METRICS_PORT "x"/);
  });

  it('only the configured scrapers may read /metrics (default: this host); a bad entry is refused by name', () => {
    const local = scraperList();
    assert.ok(mayScrape(local, '127.0.0.1') && mayScrape(local, '::1') && mayScrape(local, '::ffff:127.0.0.1'));
    assert.ok(!mayScrape(local, '10.0.1.20') && !mayScrape(local, undefined));
    const prometheusNet = scraperList(['10.0.9.0/24', '2001:db8::5']);
    assert.ok(mayScrape(prometheusNet, '10.0.9.7') && mayScrape(prometheusNet, '2001:db8::5') && !mayScrape(prometheusNet, '10.0.8.7') && !mayScrape(prometheusNet, '127.0.0.1'));
    assert.throws(() => scraperList(['10.0.0.0/33']), /"10\.0\.0\.0\/33" is not an IP address or CIDR range/);
  });

  it('a read that hangs fails the scrape\'s figures, not the scrape, and is not started twice', async () => {
    let started = 0;
    const read = sharedRead(() => {
      started++;
      return new Promise<number>(() => undefined);
    }, 0, 50);
    assert.equal(await read.get(), undefined);
    assert.equal(await read.get(), undefined);
    assert.equal(started, 1, 'the hanging read is shared');
    assert.equal(read.failures, 2);
  });
});
