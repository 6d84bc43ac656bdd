/**
 * pnpm bench cmp [--seconds S] [--rounds N] [--clients C] [--flood-rate R] [--flood-addresses A] [--flood-in-flight F] [--unbounded] [--json] [--deadline S]
 * Honest online enrolments (POST /v1/enrolments, C concurrent clients) against an issuer-api process,
 * quiet and while another process sends garbage CMP at R requests/s from A source addresses of its own
 * (127.0.0.2...), at most F in flight per address: half of it MAC-protected with a real factory reference
 * (references travel in clear) and a wrong secret, asking for the most PBM iterations accepted, half
 * bytes that are not CMP at all. Unbounded, each would cost the API a database read, a secret derived in
 * the HSM, the PBM iterations and an HSM-signed error. Quiet and flooded windows alternate (N rounds, S
 * seconds of each kind in all), so that what the rest of a shared machine does falls on both alike.
 * Prints the honest p50/p99 of both, their ratio (the claim to check: within 2x), how the garbage was
 * answered, and the raw HSM signing rate measured in the same run. `--unbounded` does it again with the
 * per-address budget and the failed-authentication limit lifted (the PBM cap and thread stay): what the
 * budget saves.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool as HttpPool } from 'undici';
import { loadConfig } from '@fleetpki/core';
import { CmpSharedSecrets, DeviceKeyService, issueApiToken, registerSyntheticManufacturer } from '@fleetpki/ca';
import { MAX_PBM_ITERATIONS, derInteger } from '@fleetpki/cmp';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { createPool, listMasterKeys } from '@fleetpki/store';
import { generateDeviceKeys } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { TimedEnrolments, benchOptions, euiGenerator, measureRawHsmRate, percentile } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    clients: { type: 'string', default: '16' },
    'flood-rate': { type: 'string', default: '100' },
    'flood-addresses': { type: 'string', default: '4' },
    'flood-in-flight': { type: 'string', default: '16' },
    unbounded: { type: 'boolean', default: false },
    ...benchOptions(600),
  },
});
const seconds = Number(args.seconds);
const rounds = Math.max(1, Number(args.rounds));
/** Each round has a quiet and a flooded window; together they last --seconds of each kind. */
const windowSeconds = seconds / rounds;
const clients = Number(args.clients);
const floodRate = Number(args['flood-rate']);
const floodAddresses = Number(args['flood-addresses']);
const run = new BenchRun('cmp', { deadlineSeconds: Number(args.deadline), json: args.json });
const log = (line: string) => run.log(line);

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  const site = config.sites.a;
  const apiPort = site.apiPort + 100;

  run.begin(`raw HSM signing rate (one signing thread per core, ${args['hsm-seconds']} s)`);
  const rawRate = await measureRawHsmRate(config, { seconds: Number(args['hsm-seconds']) });
  log(`  ${Math.round(rawRate)} signatures/s`);

  run.begin('a factory token, and a CMP reference with its secret (derived from the device MAC master key)');
  const db = createPool(site.databaseUrl, { max: 2 });
  run.onCleanup(() => db.end());
  // Device ids only inside the manufacturer's registered EUI-64 block (README: EUI-64 ranges).
  await registerSyntheticManufacturer(db, { site: 'a', id: 'bench', name: 'Benchmark Meters', actor: 'bench' });
  const token = await issueApiToken(db, { site: 'a', actor: 'bench', name: 'bench-cmp', role: 'factory', manufacturerId: 'bench', expiresDays: 1 });
  const keyStore = await openSiteKeyStore(config, site, { sessions: 1 });
  const reference = 'bench-cmp-line';
  try {
    if (!(await listMasterKeys(db)).some((m) => m.role === 'mac' && m.status === 'active')) log(`  created master key ${(await new DeviceKeyService(db, keyStore, 'a').createMasterKey('mac', 'bench')).label}`);
    await new CmpSharedSecrets(db, keyStore, 'a').issue(reference, 'bench', 'bench');
  } finally {
    await keyStore.close();
  }

  // The garbage: openssl's own genm with the real reference and a wrong secret (written by -reqout; no
  // server needed with -rspin), its iteration count raised from openssl's 500 to the most accepted.
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-bench-cmp-'));
  try {
    execFileSync('openssl', ['cmp', '-cmd', 'genm', '-ref', reference, '-secret', 'pass:not-the-secret', '-infotype', 'signKeyPairTypes', '-rspin', '/dev/null', '-reqout', join(dir, 'genm.der')], { stdio: 'ignore' });
  } catch {
    // openssl fails on the empty answer; the request was written first.
  }
  const genm = readFileSync(join(dir, 'genm.der'));
  const count = genm.indexOf(Buffer.from('020201f4', 'hex'));
  if (count < 0) throw new Error('openssl cmp did not ask for 500 PBM iterations; cannot raise the count in place');
  const most = derInteger(MAX_PBM_ITERATIONS);
  if (most.length !== 4) throw new Error('MAX_PBM_ITERATIONS does not fit the two bytes of openssl 500');
  most.copy(genm, count);
  const garbage = [genm, Buffer.from('not a PKIMessage at all, but sent as application/pkixcmp')];

  // Enough at up to ~800 enrolments/s (this machine does ~100-400 at 16 clients), warm-ups included.
  const expected = Math.ceil(800 * (2 * seconds + 3)) * (args.unbounded ? 2 : 1);
  run.begin(`generating ${expected} device keys and CSRs for the honest clients`);
  const eui = euiGenerator('bench');
  const bodies = generateDeviceKeys(expected).map((k, i) => JSON.stringify({ eui64: eui(i), keyRole: 'digitalSignature', csr: k.csr.toString('base64') }));
  const enrolments = new TimedEnrolments(token, bodies);

  const startApi = async (env: Record<string, string>, what: string) => {
    const server = run.track(startService(config, 'issuer-api', { FLEETPKI_SITE: 'a', FLEETPKI_API_PORT_A: String(apiPort), ...env }), what);
    const stop = async () => {
      run.untrack(server);
      await stopProcess(server);
    };
    run.onCleanup(stop);
    await run.waitForHttp(`http://127.0.0.1:${apiPort}/readyz`, `the issuer API (${what}) to start`);
    return stop;
  };

  type Flood = { requests: number; seconds: number; by_answer: Record<string, number> };

  /** One window of honest enrolments at C clients, with a flood beside them when asked. */
  const window = async (http: HttpPool, flood: boolean, length: number): Promise<{ latencies: number[]; seconds: number; flood?: Flood }> => {
    let stopFlood: (() => Promise<Flood>) | undefined;
    if (flood) {
      const child = run.track(
        spawn(process.execPath, ['--import', 'tsx', join(config.repoRoot, 'scripts', 'lib', 'cmp-flood.ts'), `http://127.0.0.1:${apiPort}/.well-known/cmp`, String(floodRate), String(floodAddresses), args['flood-in-flight'], ...garbage.map((b) => b.toString('hex'))], { stdio: ['ignore', 'pipe', 'inherit'] }),
        'cmp-flood',
      );
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      run.onCleanup(async () => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      stopFlood = async () => {
        run.untrack(child);
        child.kill('SIGTERM');
        await exited;
        return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Flood;
      };
      await run.waitUntil('the garbage CMP process to start', async () => ({ done: out.includes('flooding\n'), progress: 'starting' }));
    }
    const { latencies, seconds } = await enrolments.forSeconds(http, clients, length);
    return { latencies, seconds, ...(stopFlood ? { flood: await stopFlood() } : {}) };
  };

  const summary = (latencies: number[], seconds: number) => {
    latencies.sort((a, b) => a - b);
    return { enrolments: latencies.length, enrolments_per_s: Math.round(latencies.length / seconds), p50_ms: Number(percentile(latencies, 50).toFixed(2)), p99_ms: Number(percentile(latencies, 99).toFixed(2)) };
  };

  /**
   * Quiet and flooded windows taken in turns (`--rounds`), so that what the rest of a shared machine
   * does in the meantime falls on both alike; each kind's latencies pooled.
   */
  const compare = async (env: Record<string, string>, what: string) => {
    const stop = await startApi(env, what);
    const http = new HttpPool(`http://127.0.0.1:${apiPort}`, { connections: clients, pipelining: 1 });
    // Warm-up: JIT, connections, templates.
    await window(http, false, 1);
    const quiet = { latencies: [] as number[], seconds: 0 };
    const flooded = { latencies: [] as number[], seconds: 0 };
    const answers = new Map<string, number>();
    let sent = 0;
    let floodSeconds = 0;
    for (let round = 1; round <= rounds; round++) {
      for (const flood of [false, true]) {
        run.begin(`${what}, round ${round}/${rounds}: ${clients} honest clients for ${windowSeconds} s${flood ? `, garbage CMP at ${floodRate}/s from ${floodAddresses} addresses` : ', quiet'}`);
        const w = await window(http, flood, windowSeconds);
        const into = flood ? flooded : quiet;
        into.latencies.push(...w.latencies);
        into.seconds += w.seconds;
        if (w.flood) {
          sent += w.flood.requests;
          floodSeconds += w.flood.seconds;
          for (const [k, v] of Object.entries(w.flood.by_answer)) answers.set(k, (answers.get(k) ?? 0) + v);
        }
        const s = summary([...w.latencies], w.seconds);
        log(`  ${s.enrolments} enrolments: ${s.enrolments_per_s}/s, p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms${w.flood ? `; garbage answered ${JSON.stringify(w.flood.by_answer)}` : ''}`);
      }
    }
    await http.close();
    // Garbage the API took in before the flood stopped is still being answered: let it finish, so the
    // stop below does not fail it (a request cut off by a stopping API is logged as an error).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await stop();
    const q = summary(quiet.latencies, quiet.seconds);
    const f = { ...summary(flooded.latencies, flooded.seconds), garbage_requests_per_s: Math.round(sent / floodSeconds), garbage_answers: Object.fromEntries(answers) };
    const ratio = Number((f.p99_ms / q.p99_ms).toFixed(2));
    log(`  ${what}: quiet p50 ${q.p50_ms} ms p99 ${q.p99_ms} ms (${q.enrolments_per_s}/s); under garbage p50 ${f.p50_ms} ms p99 ${f.p99_ms} ms (${f.enrolments_per_s}/s); p99 ratio ${ratio} (${ratio <= 2 ? 'within' : 'NOT within'} 2x)`);
    log(`  garbage: ${f.garbage_requests_per_s}/s sent, answered ${JSON.stringify(f.garbage_answers)}`);
    return { quiet: q, under_garbage: f, p99_ratio: ratio };
  };

  const bounded = await compare({}, 'issuer-api');
  const unbounded = args.unbounded ? await compare({ FLEETPKI_CMP_AUTH_BURST: '100000', FLEETPKI_CMP_AUTH_REFILL_PER_SECOND: '100000', FLEETPKI_AUTH_FAILURES_PER_MINUTE: '100000000' }, 'issuer-api without the CMP budget and failed-authentication limit') : undefined;
  log(`  quiet rate against the raw HSM signing rate (${Math.round(rawRate)}/s): ${(bounded.quiet.enrolments_per_s / rawRate).toFixed(3)}`);
  return {
    clients,
    seconds,
    rounds,
    flood_rate_per_s: floodRate,
    flood_addresses: floodAddresses,
    ...bounded,
    ...(unbounded ? { unbounded } : {}),
    raw_hsm_signatures_per_s: Math.round(rawRate),
    ratio_to_raw_hsm: Number((bounded.quiet.enrolments_per_s / rawRate).toFixed(3)),
  };
});
