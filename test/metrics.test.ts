import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { findRepoRoot } from '@fleetpki/core';
import { registerSyntheticManufacturer } from '@fleetpki/ca';
import { syntheticEui64 } from '@fleetpki/manifest';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { generateDeviceKeys } from '@fleetpki/x509';
import { createToken, ensureCa, siteAPool } from './support/ca.js';
import { ensureSites, localUrl, waitFor, type Pool } from './support/sites.js';

/**
 * Every metric of docs/metrics.md is on a scrape of the process the document names, in the test
 * deployment: the issuer API, the status responder, a batch worker and the daemons started here with
 * their metrics listeners, and the site agents `sites up` started. The document's names are read from
 * the document itself, so a metric documented and not exported (or exported by another process) fails.
 */
let config: FleetConfig;
let pool: Pool;
const MANUFACTURER = 'metrics-maker';

/** `fleetpki_*` names of docs/metrics.md, by the section heading they are listed under. */
function documentedNames(): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let heading = '';
  for (const line of readFileSync(join(findRepoRoot(), 'docs', 'metrics.md'), 'utf8').split('\n')) {
    if (line.startsWith('### ')) heading = line.slice(4);
    else if (heading) for (const m of line.matchAll(/`(fleetpki_[a-z0-9_]+)`/g)) sections.set(heading, [...(sections.get(heading) ?? []), m[1]!]);
  }
  return sections;
}

/** The processes each section's metrics come from (its heading names them; this says which names mean which processes). */
const SECTION_PROCESSES: Record<string, readonly string[]> = {
  'HSM (every process that signs: issuer-api, batch-worker, daemons, status-responder)': ['issuer-api', 'batch-worker', 'daemons', 'status-responder'],
  'Issuance (issuer-api; batch-worker for `channel="batch"`)': ['issuer-api'],
  "Batch (batch-worker; the queue's three gauges from the daemons too)": ['batch-worker'],
  'Status (status-responder; daemons for pre-production)': ['status-responder'],
  "The site's role (every service: issuer-api, status-responder, batch-worker, daemons)": ['issuer-api', 'status-responder', 'batch-worker', 'daemons'],
  'Database, replication, archive, audit and drills (site-agent)': ['site-agent'],
  'Every process that reads at a scrape': ['status-responder', 'batch-worker', 'site-agent'],
  'Daemons and status responder, their own work': ['daemons'],
};
/** Exceptions within a section: a name exported by other processes than the section's. */
const ONLY_IN: Record<string, readonly string[]> = {
  fleetpki_ocsp_preproduction_backlog_seconds: ['daemons'],
  fleetpki_batch_queue_jobs: ['batch-worker', 'daemons'],
  fleetpki_batch_workers_connected: ['batch-worker', 'daemons'],
  fleetpki_batch_oldest_unfinished_chunk_seconds: ['batch-worker', 'daemons'],
  fleetpki_http_requests_total: ['issuer-api'],
  fleetpki_http_request_duration_seconds: ['issuer-api'],
  fleetpki_writes_blocked: ['issuer-api'],
  fleetpki_ocsp_cache_entries: ['status-responder'],
  fleetpki_ocsp_cache_loaded: ['status-responder'],
  fleetpki_daemon_skipped_not_leader: ['daemons'],
  fleetpki_daemon_last_pass_seconds: ['daemons'],
  fleetpki_daemon_last_duration_seconds: ['daemons'],
};

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.text();
}

/** The value of one series, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

before(async () => {
  config = await ensureSites();
  pool = siteAPool(config);
  await ensureCa(config, pool);
  await registerSyntheticManufacturer(pool, { site: 'a', id: MANUFACTURER, name: 'Metrics Meters', actor: 'test' });
});

after(async () => {
  await pool?.end();
});

describe('metrics on every process', () => {
  it('each documented metric is on a scrape of the processes the document names, labelled with site and process', async () => {
    const a = config.sites.a;
    const ports = { api: a.apiPort + 520, status: a.statusPort + 520, daemons: a.apiPort + 540, worker: a.apiPort + 541 };
    const env = { FLEETPKI_SITE: 'a', FLEETPKI_LOG_LEVEL: 'error', FLEETPKI_API_PORT_A: String(ports.api), FLEETPKI_STATUS_PORT_A: String(ports.status), FLEETPKI_CRL_BASE_URL: config.crlBaseUrl };
    const children = [
      startService(config, 'issuer-api', env),
      startService(config, 'status-responder', env),
      startService(config, 'daemons', { ...env, FLEETPKI_METRICS_PORT: String(ports.daemons) }),
      startService(config, 'batch-worker', { ...env, FLEETPKI_METRICS_PORT: String(ports.worker) }),
    ];
    try {
      const api = localUrl(config, 'api', ports.api);
      await waitForHttp(`${api}/readyz`);
      await waitForHttp(`${localUrl(config, 'status', ports.status)}/healthz`);
      await waitForHttp(`http://${a.host}:${ports.daemons}/healthz`);
      await waitForHttp(`http://${a.host}:${ports.worker}/metrics`);

      // One online enrolment: an intent, an HSM signature, a stored certificate, a latency sample.
      const token = await createToken(pool, 'factory', MANUFACTURER, `metrics-factory-${randomBytes(3).toString('hex')}`);
      const [key] = generateDeviceKeys(1);
      const enrolment = await fetch(`${api}/v1/enrolments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ eui64: syntheticEui64(MANUFACTURER), keyRole: 'digitalSignature', csr: key!.csr.toString('base64') }),
      });
      assert.equal(enrolment.status, 201, await enrolment.clone().text());
      // And one refused: a CSR that is not one.
      const refused = await fetch(`${api}/v1/enrolments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ eui64: syntheticEui64(MANUFACTURER), keyRole: 'digitalSignature', csr: Buffer.from('not a CSR').toString('base64') }),
      });
      assert.ok(refused.status >= 400 && refused.status < 500, `a bad CSR is refused (${refused.status})`);
      const refusedCode = ((await refused.json()) as { code: string }).code;

      // A request id: the client's own (plain) is answered and written into the request's audit rows; one
      // that is not plain is replaced by the API's own.
      const officer = await createToken(pool, 'revocation-officer', null, `metrics-officer-${randomBytes(3).toString('hex')}`);
      const requestId = `metrics-${randomBytes(6).toString('hex')}`;
      const serial = ((await enrolment.json()) as { serial: string }).serial;
      const revoked = await fetch(`${api}/v1/revocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${officer}`, 'content-type': 'application/json', 'x-request-id': requestId },
        body: JSON.stringify({ serials: [serial] }),
      });
      assert.equal(revoked.status, 200, await revoked.clone().text());
      assert.equal(revoked.headers.get('x-request-id'), requestId);
      const audited = await pool.query(`SELECT action FROM audit_events WHERE details->>'requestId' = $1`, [requestId]);
      assert.deepEqual(audited.rows.map((r: { action: string }) => r.action), ['revocation.request'], "the revocation's audit row carries the request id");
      const replaced = (await fetch(`${api}/healthz`, { headers: { 'x-request-id': 'two words' } })).headers.get('x-request-id');
      assert.match(replaced ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'an id that is not plain is not taken');

      const urls: Record<string, string> = {
        'issuer-api': `${api}/metrics`,
        'status-responder': `${localUrl(config, 'status', ports.status)}/metrics`,
        daemons: `http://${a.host}:${ports.daemons}/metrics`,
        'batch-worker': `http://${a.host}:${ports.worker}/metrics`,
        'site-agent': `http://${a.host}:${a.metrics.agent}/metrics`,
      };
      const scrapes = new Map<string, string>();
      for (const [process, url] of Object.entries(urls)) scrapes.set(process, await scrape(url));

      const missing: string[] = [];
      for (const [section, names] of documentedNames()) {
        const processes = SECTION_PROCESSES[section];
        assert.ok(processes, `docs/metrics.md section "${section}" is not known to this test: say which processes export its metrics`);
        for (const name of names) {
          for (const process of ONLY_IN[name] ?? processes) {
            if (!scrapes.get(process)!.includes(`# TYPE ${name} `)) missing.push(`${name} on ${process}`);
          }
        }
      }
      assert.deepEqual(missing, [], 'documented metrics missing from a scrape');

      for (const [process, text] of scrapes) {
        assert.ok(sample(text, 'process_cpu_seconds_total', { site: 'a', process })! > 0, `${process}: process metrics labelled site="a", process="${process}"`);
      }
      const issuer = scrapes.get('issuer-api')!;
      assert.ok(sample(issuer, 'fleetpki_hsm_operations_total', { kind: 'sign' })! >= 1, 'the enrolment signed in the HSM');
      assert.ok(sample(issuer, 'fleetpki_intents_recorded_total', { channel: 'online' })! >= 1);
      assert.ok(sample(issuer, 'fleetpki_certificates_stored_total', { channel: 'online' })! >= 1);
      assert.ok(sample(issuer, 'fleetpki_enrolment_duration_seconds_count', { protocol: 'json' })! >= 2);
      assert.equal(sample(issuer, 'fleetpki_enrolment_refusals_total', { protocol: 'json', code: refusedCode }), 1, `the refusal counted under ${refusedCode}`);
      assert.equal(sample(issuer, 'fleetpki_site_active'), 1, 'site a is the active site of the test deployment');
      const agent = scrapes.get('site-agent')!;
      assert.equal(sample(agent, 'fleetpki_database_primary'), 1);
      assert.equal(sample(agent, 'fleetpki_replication_synchronous'), 1, 'site b streams as the synchronous standby');
      assert.ok(sample(agent, 'fleetpki_replication_lag_bytes', { standby: 'site_b' }) !== undefined);
      const agentB = await scrape(`http://${config.sites.b.host}:${config.sites.b.metrics.agent}/metrics`);
      assert.equal(sample(agentB, 'fleetpki_database_primary', { site: 'b' }), 0, "site b's agent: a standby");
      assert.ok(sample(scrapes.get('batch-worker')!, 'fleetpki_batch_workers_connected')! >= 1, 'the worker counts itself');
      // The CRLs the status responder serves, once the daemons published them.
      await waitFor('a CRL on the status responder', async () => sample(await scrape(urls['status-responder']!), 'fleetpki_crl_number', { kind: 'full' }), 30_000, 500);
    } finally {
      await Promise.all(children.map(stopProcess));
    }
  });
});
