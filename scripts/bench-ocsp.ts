/**
 * pnpm bench ocsp [--certificates N] [--connections C] [--seconds S] [--json]
 * The OCSP responder under load, as relying parties see it: a status-responder process (its own
 * process, as in production) answers POST requests from C concurrent connections for random serials
 * among N certificates whose responses the responder pre-produced in the background. Prints how long
 * pre-production took, responses/s, p50, p99, errors, and the raw HSM signing rate measured in the same
 * run with the ratio. One response is checked with `openssl ocsp`.
 * Certificates are synthetic rows in a throw-away database (scripts/lib/synthetic-ca.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { buildCertId, buildOcspRequest } from '@fleetpki/ca';
import { loadConfig } from '@fleetpki/core';
import { listCas } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, toPem } from '@fleetpki/x509';
import { measureRawHsmRate, peakRssMb } from './lib/bench.js';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { createSyntheticCaDatabase } from './lib/synthetic-ca.js';

/** preProduceNew's default settle time: certificates younger than this are left for the next pass. */
const PRODUCE_SETTLE_S = 10;

const { values: args } = parseArgs({
  options: {
    certificates: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const certificates = Number(args.certificates);
const connections = Number(args.connections);
const log = (line: string) => {
  if (!args.json) console.log(line);
};

const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
log('raw HSM signing rate (1 process x 4 sessions, 3 s) ...');
const rawRate = await measureRawHsmRate(config, { sessions: 4, seconds: 3 });
log(`  ${Math.round(rawRate)} signatures/s`);

log(`synthetic CA database with ${certificates} certificates ...`);
const data = await createSyntheticCaDatabase(config, certificates);
const statusPort = config.sites.a.statusPort + 100;
const responder = startService(config, 'status-responder', { FLEETPKI_SITE: 'a', FLEETPKI_DATABASE_URL: data.url, FLEETPKI_STATUS_PORT_A: String(statusPort) });
try {
  const url = `http://127.0.0.1:${statusPort}/ocsp`;
  await waitForHttp(`http://127.0.0.1:${statusPort}/healthz`);
  const issuingRecord = (await listCas(data.pool)).find((c) => c.id === data.caId)!;
  const issuing = parseCaCertificate(issuingRecord.certificate);
  const hashes = ocspIssuerHashes(issuing.subjectDer, issuing.publicKeySpki);
  const serials = await data.serials(certificates);
  const bodies = serials.map((s) => buildOcspRequest(buildCertId('sha1', hashes, s)));

  // The responder pre-produces a response for every certificate in the background (RFC 9919); the
  // load starts once all are stored, so every request is answered from what was pre-produced.
  log(`waiting for the responder to pre-produce ${certificates} responses ...`);
  const t = performance.now();
  for (;;) {
    const { rows } = await data.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ocsp_responses WHERE hash_alg = 'sha1'");
    if (rows[0]!.n >= certificates) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const produceSeconds = (performance.now() - t) / 1000;
  log(`  all stored ${produceSeconds.toFixed(1)} s after the responder answered (certificates wait ${PRODUCE_SETTLE_S} s to settle first)`);

  log(`load: ${connections} connections for ${args.seconds} s, POST, random serial each request ...`);
  const result = await autocannon({
    url,
    connections,
    duration: Number(args.seconds),
    method: 'POST',
    headers: { 'content-type': 'application/ocsp-request' },
    requests: [
      {
        setupRequest: (req) => ({ ...req, body: bodies[Math.floor(Math.random() * bodies.length)] }),
      },
    ],
  });

  // One response, checked by a real client.
  const dir = join(config.stateDir, 'bench');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ocsp-issuing.pem'), toPem(issuingRecord.certificate));
  const root = (await listCas(data.pool)).find((c) => c.kind === 'root')!;
  writeFileSync(join(dir, 'ocsp-root.pem'), toPem(root.certificate));
  const openssl = execFileSync('openssl', ['ocsp', '-issuer', join(dir, 'ocsp-issuing.pem'), '-CAfile', join(dir, 'ocsp-root.pem'), '-serial', `0x${serials[0]!.toString('hex')}`, '-url', url, '-no_nonce'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

  const summary = {
    benchmark: 'ocsp',
    certificates,
    connections,
    seconds: Number(args.seconds),
    responses_per_s: Math.round(result.requests.average),
    responses: result.requests.total,
    latency_p50_ms: result.latency.p50,
    latency_p99_ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
    preproduced_all_s: Number(produceSeconds.toFixed(1)),
    raw_hsm_signatures_per_s: Math.round(rawRate),
    ratio_to_raw_hsm: Number((result.requests.average / rawRate).toFixed(2)),
    responder_peak_rss_mb: peakRssMb(responder.pid!),
    openssl: openssl.split('\n')[0],
  };
  log(`  ${summary.responses_per_s} responses/s, p50 ${summary.latency_p50_ms} ms, p99 ${summary.latency_p99_ms} ms, ${summary.errors} errors (${summary.responses} responses)`);
  log(`  ratio to raw HSM signing rate (${summary.raw_hsm_signatures_per_s}/s): ${summary.ratio_to_raw_hsm} (pre-produced responses are served without signing)`);
  log(`  responder peak RSS ${summary.responder_peak_rss_mb} MB; openssl ocsp: ${openssl.replace(/\n/g, ' | ')}`);
  console.log(JSON.stringify(summary));
} finally {
  await stopProcess(responder);
  await data.drop();
}
