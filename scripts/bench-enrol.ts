/**
 * pnpm bench enrol [--json] [--seconds N] [--clients N] [--mode csr|publicKey] [--deadline S]
 * Online enrolments/s and p50/p99 latency at 64 concurrent HTTP clients against a separately running
 * issuer-api, next to the raw HSM signing rate measured in the same run, and the CPU time per enrolment
 * of the API, both PostgreSQL clusters and Redis (scripts/lib/cpu-meter.ts), and of the load generator
 * itself (it shares the cores). Then the same over EST (RFC 7030 simpleenroll, HTTPS, HTTP Basic with the
 * factory's token) against the API restarted with TLS.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool as HttpPool } from 'undici';
import { entryPoint, loadConfig } from '@fleetpki/core';
import { issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { signRawKeyStatement } from '@fleetpki/manifest';
import { createPool, setManufacturerManifestKey } from '@fleetpki/store';
import { DEVICE_PROFILES, buildMinimalCsr, c509ToX509, generateDeviceKeys } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { CpuMeter, cpuPerCertificate } from './lib/cpu-meter.js';
import { TimedEnrolments, benchOptions, euiGenerator, measureRawHsmRate, percentile } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '15' }, clients: { type: 'string', default: '64' }, mode: { type: 'string', default: 'csr' }, ...benchOptions(600) },
});
const seconds = Number(args.seconds);
const clients = Number(args.clients);
const mode = args.mode === 'publicKey' ? 'publicKey' : 'csr';
const run = new BenchRun('enrol', { deadlineSeconds: Number(args.deadline), json: args.json });
const log = (line: string) => run.log(line);

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  const site = config.sites.a;

  run.begin(`raw HSM signing rate (one signing thread per core, ${args['hsm-seconds']} s)`);
  const rawRate = await measureRawHsmRate(config, { seconds: Number(args['hsm-seconds']) });
  log(`  ${rawRate.toFixed(0)} signatures/s`);

  const db = createPool(site.databaseUrl, { max: 2 });
  await registerSyntheticManufacturer(db, { site: 'a', id: 'bench', name: 'Benchmark Meters', actor: 'bench' });
  const token = await issueApiToken(db, { site: 'a', actor: 'bench', name: 'bench-enrol', role: 'factory', manufacturerId: 'bench', expiresDays: 1 });
  // The API's server certificate (EST phase) is an administrator's to issue.
  const adminToken = await issueApiToken(db, { site: 'a', actor: 'bench', name: 'bench-administrator', role: 'administrator', manufacturerId: null, expiresDays: 1 });
  // Raw public keys come with a statement signed by the manufacturer's registered key (README: raw public keys).
  const manufacturerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (mode === 'publicKey') await setManufacturerManifestKey(db, 'bench', manufacturerKey.publicKey.export({ format: 'der', type: 'spki' }));
  await db.end();

  // Enough for both phases (JSON, then EST with the rest) at up to ~3,000 enrolments/s each.
  const expected = Math.ceil(6_000 * (seconds + 2));
  run.begin(`generating ${expected} device keys and CSRs`);
  const keys = generateDeviceKeys(expected);
  const eui = euiGenerator('bench');
  const bodies = keys.map((k, i) =>
    JSON.stringify({
      eui64: eui(i),
      keyRole: 'digitalSignature',
      ...(mode === 'csr'
        ? { csr: k.csr.toString('base64') }
        : { publicKey: k.publicKeySpki.toString('base64'), publicKeySignature: signRawKeyStatement({ manufacturerId: 'bench', eui64: eui(i), keyRole: 'digitalSignature', spki: k.publicKeySpki }, manufacturerKey.privateKey) }),
    }),
  );

  const server = run.track(startService(config, 'issuer-api', { FLEETPKI_SITE: 'a' }), 'issuer-api');
  run.onCleanup(async () => {
    run.untrack(server);
    await stopProcess(server);
  });
  await run.waitForHttp(`http://127.0.0.1:${site.apiPort}/readyz`, 'the issuer API to start');
  const http = new HttpPool(`http://127.0.0.1:${site.apiPort}`, { connections: clients, pipelining: 1 });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  // Warm-up: JIT, connection setup, templates.
  const enrolments = new TimedEnrolments(token, bodies);
  await Promise.all(Array.from({ length: clients }, () => enrolments.one(http)));

  run.begin(`enrolling for ${seconds} s with ${clients} concurrent clients (${mode})`);
  const meter = new CpuMeter(() => ({ 'issuer-api': [{ pid: server.pid!, withChildren: false }], ...CpuMeter.siteProcesses(site, 'primary'), ...CpuMeter.siteProcesses(config.sites.b, 'standby') }));
  meter.begin();
  // The load generator runs on the same cores as the CA: its own CPU shows how much of the machine the
  // measurement itself took, and with the CA's it bounds the rate this machine could reach at all.
  const clientCpu = process.cpuUsage();
  const { latencies, seconds: elapsed } = await enrolments.forSeconds(http, clients, seconds);
  let next = enrolments.taken;
  const cpu = cpuPerCertificate(meter.end(), latencies.length);
  const clientUsed = process.cpuUsage(clientCpu);
  const loadGeneratorUs = Math.round((clientUsed.user + clientUsed.system) / latencies.length);
  const cpuBoundRate = Math.round((availableParallelism() * 1e6) / (cpu.total_core_us_per_certificate + loadGeneratorUs));

  // Size report: real certificates of every profile, as DER and as C509 (type 3, or type 2 when native).
  const sizes: Record<string, { der_bytes: string; c509_bytes: string; c509_type: number }> = {};
  const sizeKeys = generateDeviceKeys(20 * Object.keys(DEVICE_PROFILES).length);
  for (const [p, profile] of Object.entries(DEVICE_PROFILES)) {
    const der: number[] = [];
    const c509: number[] = [];
    for (const k of sizeKeys.splice(0, 20)) {
      const res = await http.request({ path: '/v1/enrolments', method: 'POST', headers, body: JSON.stringify({ eui64: eui(next++), keyRole: 'digitalSignature', profile: p, csr: k.csr.toString('base64'), format: 'c509' }) });
      const json = (await res.body.json()) as { certificate: string };
      if (res.statusCode !== 201) throw new Error(`size enrolment failed: ${res.statusCode} ${JSON.stringify(json)}`);
      const bytes = Buffer.from(json.certificate, 'base64');
      c509.push(bytes.length);
      if (!profile.nativeC509) der.push(c509ToX509(bytes).length);
    }
    const range = (xs: number[]) => (xs.length ? `${Math.min(...xs)}-${Math.max(...xs)}` : 'none (natively signed)');
    sizes[p] = { der_bytes: range(der), c509_bytes: range(c509), c509_type: profile.nativeC509 ? 2 : 3 };
  }
  await http.close();
  latencies.sort((a, b) => a - b);
  const rate = latencies.length / elapsed;
  run.untrack(server);
  await stopProcess(server);
  const est = await measureEst(token, keys.slice(next), eui, next + 1_000);

  const result = {
    mode,
    clients,
    seconds: Number(elapsed.toFixed(2)),
    enrolments: latencies.length,
    enrolments_per_s: Math.round(rate),
    p50_ms: Number(percentile(latencies, 50).toFixed(2)),
    p99_ms: Number(percentile(latencies, 99).toFixed(2)),
    raw_hsm_signatures_per_s: Math.round(rawRate),
    ratio_to_raw_hsm: Number((rate / rawRate).toFixed(3)),
    cpu_core_us_per_enrolment: cpu,
    load_generator_core_us_per_enrolment: loadGeneratorUs,
    cpu_bound_enrolments_per_s: cpuBoundRate,
    est,
    certificate_sizes: sizes,
  };
  log(`  ${result.enrolments} enrolments in ${result.seconds} s: ${result.enrolments_per_s}/s, p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms`);
  log(`  ratio to raw HSM signing rate (${result.raw_hsm_signatures_per_s}/s): ${result.ratio_to_raw_hsm}`);
  log(`  CPU per enrolment: ${cpu.total_core_us_per_certificate} core-us (${Object.entries(cpu.by_process).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  log(`  load generator (this process, on the same ${availableParallelism()} cores): ${loadGeneratorUs} core-us per enrolment; CA and load generator together leave room for at most ${cpuBoundRate}/s here`);
  log(`  EST (HTTPS, ${clients} clients, ${est.seconds} s): ${est.enrolments} enrolments, ${est.enrolments_per_s}/s, p50 ${est.p50_ms} ms, p99 ${est.p99_ms} ms; ratio to raw HSM ${(est.enrolments_per_s / rawRate).toFixed(3)}`);
  log('  certificate sizes (20 enrolments per profile):');
  for (const [p, size] of Object.entries(sizes)) log(`    ${p.padEnd(26)} DER ${size.der_bytes.padEnd(22)} C509 type ${size.c509_type}: ${size.c509_bytes} bytes`);
  return result;

  /** EST simpleenroll over HTTPS with the same keys' successors: the API restarted with TLS on. */
  async function measureEst(factoryToken: string, estKeys: ReturnType<typeof generateDeviceKeys>, euiOf: (i: number) => string, firstEui: number) {
    run.begin(`EST: enrolling for ${seconds} s with ${clients} concurrent HTTPS clients (simpleenroll)`);
    if (!existsSync(join(config.api.tlsDir, 'server.pem'))) {
      execFileSync(process.execPath, [...entryPoint(config.repoRoot, 'cli'), 'tls', 'server'], { stdio: 'ignore', env: { ...process.env, FLEETPKI_SITE: 'a', FLEETPKI_TOKEN: adminToken } });
    }
    const tlsServer = run.track(startService(config, 'issuer-api', { FLEETPKI_SITE: 'a', FLEETPKI_API_TLS: 'on' }), 'issuer-api (TLS)');
    run.onCleanup(async () => {
      run.untrack(tlsServer);
      await stopProcess(tlsServer);
    });
    const ca = readFileSync(join(config.api.tlsDir, 'clients-ca.pem'));
    const https = new HttpPool(`https://127.0.0.1:${site.apiPort}`, { connections: clients, pipelining: 1, connect: { ca } });
    const deadlineReady = Date.now() + 60_000;
    for (;;) {
      const ready = await https.request({ path: '/readyz', method: 'GET' }).then(async (r) => (await r.body.text(), r.statusCode === 200), () => false);
      if (ready) break;
      if (Date.now() > deadlineReady) throw new Error('the issuer API with TLS did not become ready in 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const estHeaders = { 'content-type': 'application/pkcs10', authorization: `Basic ${Buffer.from(`bench-line:${factoryToken}`).toString('base64')}` };
    // CSRs naming their device (subject serialNumber), made before the clock starts.
    const estBodies = estKeys.map((key, k) => buildMinimalCsr(key.publicKeySpki, (info) => sign('sha256', info, key.privateKey), euiOf(firstEui + k).replace(/[-:]/g, '')).toString('base64'));
    let i = 0;
    const estOne = async (): Promise<number> => {
      const body = estBodies[i++];
      if (body === undefined) throw new Error('ran out of pre-generated keys for EST; raise the estimate');
      const t0 = performance.now();
      const res = await https.request({ path: '/.well-known/est/simpleenroll', method: 'POST', headers: estHeaders, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`EST enrolment failed: ${res.statusCode} ${text}`);
      return performance.now() - t0;
    };
    await Promise.all(Array.from({ length: clients }, () => estOne()));
    const estLatencies: number[] = [];
    const estDeadline = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < estDeadline) estLatencies.push(await estOne());
      }),
    );
    const estElapsed = (performance.now() - t0) / 1000;
    await https.close();
    estLatencies.sort((a, b) => a - b);
    return {
      seconds: Number(estElapsed.toFixed(2)),
      enrolments: estLatencies.length,
      enrolments_per_s: Math.round(estLatencies.length / estElapsed),
      p50_ms: Number(percentile(estLatencies, 50).toFixed(2)),
      p99_ms: Number(percentile(estLatencies, 99).toFixed(2)),
    };
  }
});
