/**
 * pnpm bench crl [--revoked N] [--request M] [--json] [--deadline S]
 * 1. Publishing: N revoked certificates of the device issuing CA (default 1,000,000), all 64 shards
 *    published (full CRLs, signed in the HSM, read back by the completeness guard), then republished
 *    with deltas. Prints the times, shard sizes (entries, bytes) and `openssl crl -verify` of a shard.
 * 2. Revocation to OCSP: M devices (default 100,000) whose good responses are pre-produced are revoked
 *    in one request to the issuer-api; the time until the status-responder answers "revoked" for every
 *    one of them (all polled over OCSP, as relying parties would).
 * Both use synthetic certificate rows in throw-away databases (scripts/lib/synthetic-ca.ts) and the
 * raw HSM signing rate is measured in the same run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CrlPublisher, buildCertId, buildOcspRequest, loadSiteIssuer, postgresStatusStore } from '@fleetpki/ca';
import { loadConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { getCrl, listCas } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, toPem } from '@fleetpki/x509';
import { startService, stopProcess } from '@fleetpki/sites';
import { benchOptions, measureRawHsmRate, percentile } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { revokeAndPollOcsp } from './lib/revocation-to-ocsp.js';
import { createSyntheticCaDatabase, syntheticEui64 } from './lib/synthetic-ca.js';

const { values: args } = parseArgs({
  options: {
    revoked: { type: 'string', default: '1000000' },
    request: { type: 'string', default: '100000' },
    ...benchOptions(3600),
  },
});
const revokedCount = Number(args.revoked);
const requestCount = Number(args.request);
const run = new BenchRun('crl', { deadlineSeconds: Number(args.deadline), json: args.json });

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  const dir = join(config.deploymentDir, 'bench');
  mkdirSync(dir, { recursive: true });

  run.begin(`raw HSM signing rate (one signing thread per core, ${args['hsm-seconds']} s)`);
  const rawRate = await measureRawHsmRate(config, { seconds: Number(args['hsm-seconds']) });
  run.log(`  ${Math.round(rawRate)} signatures/s`);

  // --- 1. Publishing all shards with N revoked ----------------------------------------------------
  run.begin(`1. ${revokedCount} revoked certificates: synthetic CA database`);
  const publishing = await createSyntheticCaDatabase(config, revokedCount, (line) => run.log(`  ${line}`), (drop) => run.onCleanup(drop));
  let publishResult: Record<string, unknown>;
  {
    await publishing.pool.query(
      `INSERT INTO revocations (serial, ca_id, crl_shard, reason, revoked_at, requested_by)
       SELECT serial, ca_id, crl_shard, 1, now(), 'bench' FROM certificates`,
    );
    const keyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 4 });
    try {
      const { ca } = await loadSiteIssuer(config, publishing.pool, keyStore);
      const publisher = new CrlPublisher(postgresStatusStore(publishing.pool), ca, config.crlBaseUrl);
      run.begin(`publishing all ${publisher.shards} shards (full CRLs)`);
      let t = performance.now();
      const first = await publisher.publishAll();
      const firstSeconds = run.seconds(t);
      run.log(`  ${first.entries} entries in ${first.shards.length} shards, ${(first.bytes / 1e6).toFixed(1)} MB, in ${firstSeconds} s`);
      run.begin('republishing (full + delta per shard)');
      t = performance.now();
      const again = await publisher.publishAll();
      const againSeconds = run.seconds(t);
      run.log(`  ${(again.bytes / 1e6).toFixed(1)} MB in ${againSeconds} s`);

      const { rows } = await publishing.pool.query<{ entries: number; bytes: number }>("SELECT entries, octet_length(der) AS bytes FROM crls WHERE ca_id = $1 AND kind = 'full' ORDER BY entries", [publishing.caId]);
      const entries = rows.map((r) => r.entries);
      const bytes = rows.map((r) => r.bytes).sort((a, b) => a - b);
      const shard0 = (await getCrl(publishing.pool, publishing.caId, 0, 'full'))!;
      writeFileSync(join(dir, 'crl-s0000.crl'), shard0.der);
      writeFileSync(join(dir, 'crl-issuing.pem'), toPem(ca.record.certificate));
      const verify = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl-s0000.crl'), '-CAfile', join(dir, 'crl-issuing.pem'), '-noout', '-verify'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
      publishResult = {
        revoked: revokedCount,
        shards: rows.length,
        publish_all_s: firstSeconds,
        republish_with_deltas_s: againSeconds,
        total_mb: Number((first.bytes / 1e6).toFixed(1)),
        shard_entries: { min: entries[0], median: percentile(entries, 50), max: entries[entries.length - 1] },
        shard_bytes: { min: bytes[0], median: percentile(bytes, 50), max: bytes[bytes.length - 1] },
        openssl_crl_verify_shard0: verify.trim() || 'verify OK',
      };
      run.log(`  shard entries min/median/max ${entries[0]}/${percentile(entries, 50)}/${entries[entries.length - 1]}; bytes ${bytes[0]}/${percentile(bytes, 50)}/${bytes[bytes.length - 1]}`);
      run.log(`  openssl crl -verify (shard 0, ${shard0.entries} entries): ${verify.trim() || 'verify OK'}`);
    } finally {
      await keyStore.close();
      await publishing.drop();
    }
  }

  // --- 2. A revocation request of M devices until OCSP says revoked for all -----------------------
  run.begin(`2. revoking ${requestCount} devices in one request: synthetic CA database`);
  const revoking = await createSyntheticCaDatabase(config, requestCount, (line) => run.log(`  ${line}`), (drop) => run.onCleanup(drop));
  const ports = { api: config.sites.a.apiPort + 100, status: config.sites.a.statusPort + 100 };
  const env = { FLEETPKI_SITE: 'a', ...revoking.env, FLEETPKI_API_PORT_A: String(ports.api), FLEETPKI_STATUS_PORT_A: String(ports.status) };
  const api = run.track(startService(config, 'issuer-api', env), 'issuer-api');
  const responder = run.track(startService(config, 'status-responder', env), 'status-responder');
  // The site's daemons publish the CRL shards the revocation dirties (the responder answers only).
  const daemons = run.track(startService(config, 'daemons', env), 'daemons');
  run.onCleanup(async () => {
    for (const child of [api, responder, daemons]) run.untrack(child);
    await Promise.all([api, responder, daemons].map(stopProcess));
  });
  await run.waitForHttp(`http://127.0.0.1:${ports.api}/readyz`, 'the issuer API to start');
  await run.waitForHttp(`http://127.0.0.1:${ports.status}/healthz`, 'the status responder to start');
  const issuing = parseCaCertificate((await listCas(revoking.pool)).find((c) => c.id === revoking.caId)!.certificate);
  const hashes = ocspIssuerHashes(issuing.subjectDer, issuing.publicKeySpki);
  const serials = await revoking.serials(requestCount);
  const requests = serials.map((s) => buildOcspRequest(buildCertId('sha1', hashes, s)));

  const t = performance.now();
  await run.waitUntil(`the responder to pre-produce ${requestCount} good responses in ${revoking.name}`, async () => {
    const { rows } = await revoking.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ocsp_responses WHERE hash_alg = 'sha1'");
    return { done: rows[0]!.n >= requestCount, progress: `${rows[0]!.n}/${requestCount} stored` };
  });
  run.log(`  pre-produced in ${run.seconds(t)} s`);

  const devices = Array.from({ length: requestCount }, (_, i) => syntheticEui64(i + 1));
  const revocationResult = await revokeAndPollOcsp(run, { apiUrl: `http://127.0.0.1:${ports.api}`, ocspUrl: `http://127.0.0.1:${ports.status}/ocsp`, pool: revoking.pool, devices, ocspRequests: requests, label: '2' });
  return { raw_hsm_signatures_per_s: Math.round(rawRate), publishing: publishResult, revocation_to_ocsp: revocationResult };
});
