/**
 * pnpm bench ocsp [--certificates N] [--connections C] [--seconds S] [--revoke R] [--quiet-only] [--backlog B] [--no-daemons-during-revocation] [--json] [--deadline S]
 * 1. The OCSP responder under load, as relying parties see it: a status-responder process (its own
 *    process, as in production) answers POST requests from C concurrent connections for random serials
 *    among N certificates whose responses the site's daemons pre-produced in the background. Prints how long
 *    pre-production took, responses/s, p50, p99, errors, and the raw HSM signing rate measured in the
 *    same run with the ratio. One response is checked with `openssl ocsp`.
 * 2. Revocation to OCSP, twice: R devices revoked in one request to an issuer-api process until the
 *    responder says "revoked" for all of them, first on a quiet responder, then while another process
 *    floods it from another address with requests for serials nobody issued (each would be an HSM
 *    signature; they get a bounded share and a per-address budget). Prints both times: the flood must
 *    not slow revocation down beyond the CPU it takes on a shared machine. `--quiet-only` stops after
 *    the quiet one (a quicker run while working on the responder).
 *    Needs N >= 2R (the two revocations take different devices).
 *    Background signing beside the revocation (the daemons are another process): `--backlog B` adds B
 *    certificates without a response just before the quiet revocation, so the OCSP pre-producer signs
 *    while the responder re-signs revocations (a batch issuing meanwhile); `--no-daemons-during-revocation`
 *    stops the daemons first, the figure to compare with.
 * Certificates are synthetic rows in a throw-away database (scripts/lib/synthetic-ca.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { buildCertId, buildOcspRequest } from '@fleetpki/ca';
import { loadConfig } from '@fleetpki/core';
import { listCas } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, toPem } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { benchOptions, measureRawHsmRate, peakRssMb } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { CpuMeter, cpuPerCertificate } from './lib/cpu-meter.js';
import { revokeAndPollOcsp } from './lib/revocation-to-ocsp.js';
import { createSyntheticCaDatabase, syntheticEui64 } from './lib/synthetic-ca.js';

const { values: args } = parseArgs({
  options: {
    certificates: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '10' },
    revoke: { type: 'string', default: '10000' },
    'quiet-only': { type: 'boolean', default: false },
    backlog: { type: 'string', default: '0' },
    'no-daemons-during-revocation': { type: 'boolean', default: false },
    ...benchOptions(600),
  },
});
const certificates = Number(args.certificates);
const connections = Number(args.connections);
const revokeCount = Number(args.revoke);
const run = new BenchRun('ocsp', { deadlineSeconds: Number(args.deadline), json: args.json });

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  if (!(revokeCount >= 1 && certificates >= 2 * revokeCount)) run.fail('BENCH_ARGUMENTS', `--certificates (${certificates}) must be at least twice --revoke (${revokeCount})`);
  run.begin(`raw HSM signing rate (one signing thread per core, ${args['hsm-seconds']} s)`);
  const rawRate = await measureRawHsmRate(config, { seconds: Number(args['hsm-seconds']) });
  run.log(`  ${Math.round(rawRate)} signatures/s`);

  run.begin(`synthetic CA database with ${certificates} certificates`);
  const data = await createSyntheticCaDatabase(config, certificates, undefined, (drop) => run.onCleanup(drop));
  const statusPort = config.sites.a.statusPort + 100;
  const apiPort = config.sites.a.apiPort + 100;
  const env = { FLEETPKI_SITE: 'a', ...data.env, FLEETPKI_STATUS_PORT_A: String(statusPort), FLEETPKI_API_PORT_A: String(apiPort) };
  const responder = run.track(startService(config, 'status-responder', env), 'status-responder');
  // The site's daemons pre-produce the responses (the responder answers only).
  const daemons = run.track(startService(config, 'daemons', env), 'daemons');
  run.onCleanup(async () => {
    for (const child of [responder, daemons]) run.untrack(child);
    await Promise.all([responder, daemons].map(stopProcess));
  });
  const url = `http://127.0.0.1:${statusPort}/ocsp`;
  await run.waitForHttp(`http://127.0.0.1:${statusPort}/healthz`, 'the status responder to start');
  const issuingRecord = (await listCas(data.pool)).find((c) => c.id === data.caId)!;
  const issuing = parseCaCertificate(issuingRecord.certificate);
  const hashes = ocspIssuerHashes(issuing.subjectDer, issuing.publicKeySpki);
  const serials = await data.serials(certificates);
  const bodies = serials.map((s) => buildOcspRequest(buildCertId('sha1', hashes, s)));

  // The daemons pre-produce a response for every certificate in the background (RFC 9919); the
  // load starts once all are stored, so every request is answered from what was pre-produced.
  const t = performance.now();
  await run.waitUntil(`the responder to pre-produce ${certificates} responses in ${data.name}`, async () => {
    const { rows } = await data.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ocsp_responses WHERE hash_alg = 'sha1'");
    return { done: rows[0]!.n >= certificates, progress: `${rows[0]!.n}/${certificates} stored` };
  });
  const produceSeconds = run.seconds(t);
  run.log(`  all stored ${produceSeconds} s after the responder answered`);

  run.begin(`load: ${connections} connections for ${args.seconds} s, POST, random serial each request`);
  const result = await autocannon({
    url,
    connections,
    duration: Number(args.seconds),
    method: 'POST',
    headers: { 'content-type': 'application/ocsp-request' },
    requests: [{ setupRequest: (req) => ({ ...req, body: bodies[Math.floor(Math.random() * bodies.length)] }) }],
  });

  // One response, checked by a real client.
  const dir = join(config.deploymentDir, 'bench');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ocsp-issuing.pem'), toPem(issuingRecord.certificate));
  const root = (await listCas(data.pool)).find((c) => c.kind === 'root')!;
  writeFileSync(join(dir, 'ocsp-root.pem'), toPem(root.certificate));
  const openssl = execFileSync('openssl', ['ocsp', '-issuer', join(dir, 'ocsp-issuing.pem'), '-CAfile', join(dir, 'ocsp-root.pem'), '-serial', `0x${serials[0]!.toString('hex')}`, '-url', url, '-no_nonce'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }).trim();

  // --- 2. Revocation to OCSP, quiet and under a flood of unknown serials ---------------------------
  const api = run.track(startService(config, 'issuer-api', env), 'issuer-api');
  run.onCleanup(async () => {
    run.untrack(api);
    await stopProcess(api);
  });
  await run.waitForHttp(`http://127.0.0.1:${apiPort}/readyz`, 'the issuer API to start');
  const revocation = (label: string, first: number) =>
    revokeAndPollOcsp(run, {
      apiUrl: `http://127.0.0.1:${apiPort}`,
      ocspUrl: url,
      pool: data.pool,
      devices: Array.from({ length: revokeCount }, (_, i) => syntheticEui64(first + i)),
      ocspRequests: bodies.slice(first - 1, first - 1 + revokeCount),
      label,
    });
  if (args['no-daemons-during-revocation']) {
    run.begin('stopping the daemons before the revocations');
    run.untrack(daemons);
    await stopProcess(daemons);
  }
  const backlog = Number(args.backlog);
  if (backlog > 0) {
    run.begin(`${backlog} more certificates without a response (the pre-producer's backlog during the revocation)`);
    await data.add(backlog);
  }
  // Where the time of the quiet revocation goes, by process: CPU is what a shared machine's noise does
  // not move much, so it tells the daemons' share apart from the responder's re-signing.
  const meter = new CpuMeter(() => ({
    'status-responder': [{ pid: responder.pid!, withChildren: false }],
    'issuer-api': [{ pid: api.pid!, withChildren: false }],
    ...(daemons.exitCode === null && daemons.signalCode === null ? { daemons: [{ pid: daemons.pid!, withChildren: false }] } : {}),
    ...CpuMeter.siteProcesses(config.sites.a, 'primary'),
    ...CpuMeter.siteProcesses(config.sites.b, 'standby'),
  }));
  meter.begin();
  const quietRun = await revocation('2a. quiet responder', 1);
  const quiet = { ...quietRun, core_us_per_revocation: cpuPerCertificate(meter.end(), revokeCount) };
  run.log(`  CPU per revocation (core-µs), by process: ${JSON.stringify(quiet.core_us_per_revocation.by_process)}; total ${quiet.core_us_per_revocation.total_core_us_per_certificate}`);
  if (backlog > 0) {
    const { rows } = await data.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ocsp_responses WHERE hash_alg = 'sha1' AND status = 'good'");
    run.log(`  of the backlog of ${backlog}, ${rows[0]!.n - (certificates - revokeCount)} pre-produced by the time every revocation was served`);
  }
  if (args['quiet-only']) {
    run.log(`  revocation of ${revokeCount} to OCSP: ${quiet.all_revoked_in_ocsp_s} s from the request, ${quiet.all_revoked_after_execute_s} s from the execute call (quiet responder; the flood was not run)`);
    return { certificates, raw_hsm_signatures_per_s: Math.round(rawRate), ratio_to_raw_hsm: Number((result.requests.average / rawRate).toFixed(2)), preproduced_all_s: produceSeconds, responses_per_s: Math.round(result.requests.average), latency_p99_ms: result.latency.p99, responder_peak_rss_mb: peakRssMb(responder.pid!), backlog, daemons_during_revocation: !args['no-daemons-during-revocation'], revocation_quiet: quiet };
  }
  run.begin(`2b. a flood of unknown-serial requests (its own process, 32 connections from 127.0.0.2) while ${revokeCount} more devices are revoked`);
  const unknownBodies = Array.from({ length: 200 }, () => buildOcspRequest(buildCertId('sha1', hashes, Buffer.concat([Buffer.from([0x0c]), randomBytes(15)]))));
  const flood = run.track(
    spawn(process.execPath, ['--import', 'tsx', join(config.repoRoot, 'scripts', 'lib', 'ocsp-flood.ts'), url, ...unknownBodies.map((b) => b.toString('hex'))], { stdio: ['ignore', 'pipe', 'inherit'] }),
    'ocsp-flood',
  );
  let floodOutput = '';
  flood.stdout!.on('data', (c: Buffer) => (floodOutput += c.toString()));
  const floodExit = new Promise<void>((resolve) => flood.once('exit', () => resolve()));
  run.onCleanup(async () => {
    flood.kill('SIGKILL');
  });
  await new Promise((r) => setTimeout(r, 1_000));
  const loaded = await revocation('2b. under the unknown-serial flood', revokeCount + 1);
  run.untrack(flood);
  flood.kill('SIGTERM');
  await floodExit;
  const floodResult = JSON.parse(floodOutput.trim().split('\n').pop() ?? '{}') as { requests: number; seconds: number; by_status: Record<string, number> };
  const floodRate = Math.round(floodResult.requests / floodResult.seconds);

  const summary = {
    certificates,
    connections,
    seconds: Number(args.seconds),
    responses_per_s: Math.round(result.requests.average),
    responses: result.requests.total,
    latency_p50_ms: result.latency.p50,
    latency_p99_ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
    preproduced_all_s: produceSeconds,
    raw_hsm_signatures_per_s: Math.round(rawRate),
    ratio_to_raw_hsm: Number((result.requests.average / rawRate).toFixed(2)),
    responder_peak_rss_mb: peakRssMb(responder.pid!),
    openssl: openssl.split('\n')[0],
    revocation_quiet: quiet,
    revocation_under_unknown_load: { ...loaded, unknown_serial_requests_per_s: floodRate, unknown_serial_answers: floodResult.by_status },
    revocation_slowdown: Number((loaded.all_revoked_in_ocsp_s / quiet.all_revoked_in_ocsp_s).toFixed(2)),
  };
  run.log(`  ${summary.responses_per_s} responses/s, p50 ${summary.latency_p50_ms} ms, p99 ${summary.latency_p99_ms} ms, ${summary.errors} errors (${summary.responses} responses)`);
  run.log(`  ratio to raw HSM signing rate (${summary.raw_hsm_signatures_per_s}/s): ${summary.ratio_to_raw_hsm} (pre-produced responses are served without signing)`);
  run.log(`  revocation of ${revokeCount} to OCSP (from the request; from the execute call): ${quiet.all_revoked_in_ocsp_s} s; ${quiet.all_revoked_after_execute_s} s quiet, ${loaded.all_revoked_in_ocsp_s} s; ${loaded.all_revoked_after_execute_s} s under ${floodRate} unknown-serial requests/s (x${summary.revocation_slowdown}); the flood's answers: ${JSON.stringify(floodResult.by_status)}`);
  run.log(`  responder peak RSS ${summary.responder_peak_rss_mb} MB; openssl ocsp: ${openssl.replace(/\n/g, ' | ')}`);
  return summary;
});
