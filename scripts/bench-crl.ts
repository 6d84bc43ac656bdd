/**
 * pnpm bench crl [--revoked N] [--request M] [--json]
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
import { CrlPublisher, buildCertId, buildOcspRequest, issueApiToken, loadSiteIssuer } from '@fleetpki/ca';
import { FleetApiClient, revokeUnderDualControl } from '@fleetpki/client';
import { loadConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { getCrl, listCas } from '@fleetpki/store';
import { ocspIssuerHashes, parseCaCertificate, toPem } from '@fleetpki/x509';
import { measureRawHsmRate, percentile } from './lib/bench.js';
import { startService, stopProcess, waitForHttp } from '@fleetpki/sites';
import { createSyntheticCaDatabase, syntheticEui64 } from './lib/synthetic-ca.js';

const { values: args } = parseArgs({
  options: {
    revoked: { type: 'string', default: '1000000' },
    request: { type: 'string', default: '100000' },
    json: { type: 'boolean', default: false },
  },
});
const revokedCount = Number(args.revoked);
const requestCount = Number(args.request);
const log = (line: string) => {
  if (!args.json) console.log(line);
};
const seconds = (since: number) => Number(((performance.now() - since) / 1000).toFixed(2));

const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
const dir = join(config.stateDir, 'bench');
mkdirSync(dir, { recursive: true });

log('raw HSM signing rate (1 process x 4 sessions, 3 s) ...');
const rawRate = await measureRawHsmRate(config, { sessions: 4, seconds: 3 });
log(`  ${Math.round(rawRate)} signatures/s`);

// --- 1. Publishing all shards with N revoked ----------------------------------------------------
log(`\n1. ${revokedCount} revoked certificates: synthetic CA database ...`);
const publishing = await createSyntheticCaDatabase(config, revokedCount, (line) => log(`  ${line}`));
let publishResult: Record<string, unknown>;
{
  await publishing.pool.query(
    `INSERT INTO revocations (serial, ca_id, crl_shard, reason, revoked_at, requested_by)
     SELECT serial, ca_id, crl_shard, 1, now(), 'bench' FROM certificates`,
  );
  const keyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 4 });
  try {
    const { ca } = await loadSiteIssuer(config, publishing.pool, keyStore);
    const publisher = new CrlPublisher(publishing.pool, ca, config.crlBaseUrl);
    log(`  publishing all ${publisher.shards} shards (full CRLs) ...`);
    let t = performance.now();
    const first = await publisher.publishAll();
    const firstSeconds = seconds(t);
    log(`  ${first.entries} entries in ${first.shards.length} shards, ${(first.bytes / 1e6).toFixed(1)} MB, in ${firstSeconds} s`);
    t = performance.now();
    const again = await publisher.publishAll();
    const againSeconds = seconds(t);
    log(`  republished (full + delta per shard): ${(again.bytes / 1e6).toFixed(1)} MB in ${againSeconds} s`);

    const { rows } = await publishing.pool.query<{ entries: number; bytes: number }>("SELECT entries, octet_length(der) AS bytes FROM crls WHERE ca_id = $1 AND kind = 'full' ORDER BY entries", [publishing.caId]);
    const entries = rows.map((r) => r.entries);
    const bytes = rows.map((r) => r.bytes).sort((a, b) => a - b);
    const shard0 = (await getCrl(publishing.pool, publishing.caId, 0, 'full'))!;
    writeFileSync(join(dir, 'crl-s0000.crl'), shard0.der);
    writeFileSync(join(dir, 'crl-issuing.pem'), toPem(ca.record.certificate));
    const verify = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl-s0000.crl'), '-CAfile', join(dir, 'crl-issuing.pem'), '-noout', '-verify'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
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
    log(`  shard entries min/median/max ${entries[0]}/${percentile(entries, 50)}/${entries[entries.length - 1]}; bytes ${bytes[0]}/${percentile(bytes, 50)}/${bytes[bytes.length - 1]}`);
    log(`  openssl crl -verify (shard 0, ${shard0.entries} entries): ${verify.trim() || 'verify OK'}`);
  } finally {
    await keyStore.close();
    await publishing.drop();
  }
}

// --- 2. A revocation request of M devices until OCSP says revoked for all -----------------------
log(`\n2. revoking ${requestCount} devices in one request: synthetic CA database ...`);
const revoking = await createSyntheticCaDatabase(config, requestCount, (line) => log(`  ${line}`));
const ports = { api: config.sites.a.apiPort + 100, status: config.sites.a.statusPort + 100 };
const env = { FLEETPKI_SITE: 'a', FLEETPKI_DATABASE_URL: revoking.url, FLEETPKI_API_PORT_A: String(ports.api), FLEETPKI_STATUS_PORT_A: String(ports.status) };
const api = startService(config, 'issuer-api', env);
const responder = startService(config, 'status-responder', env);
let revocationResult: Record<string, unknown>;
try {
  await waitForHttp(`http://127.0.0.1:${ports.api}/readyz`);
  await waitForHttp(`http://127.0.0.1:${ports.status}/healthz`);
  const issuing = parseCaCertificate((await listCas(revoking.pool)).find((c) => c.id === revoking.caId)!.certificate);
  const hashes = ocspIssuerHashes(issuing.subjectDer, issuing.publicKeySpki);
  const serials = await revoking.serials(requestCount);
  const requests = serials.map((s) => buildOcspRequest(buildCertId('sha1', hashes, s)));

  log(`  waiting for the responder to pre-produce ${requestCount} good responses ...`);
  let t = performance.now();
  for (;;) {
    const { rows } = await revoking.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ocsp_responses WHERE hash_alg = 'sha1'");
    if (rows[0]!.n >= requestCount) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  log(`  pre-produced in ${seconds(t)} s`);

  /** One OCSP pass over the serials still pending; returns those not yet reported revoked. */
  const ocspUrl = `http://127.0.0.1:${ports.status}/ocsp`;
  const pass = async (pending: number[]): Promise<number[]> => {
    const still: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let k = next++; k < pending.length; k = next++) {
          const i = pending[k]!;
          const res = await fetch(ocspUrl, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: requests[i] });
          const der = Buffer.from(await res.arrayBuffer());
          // certStatus revoked is [1] (0xa1) constructed, inside the SingleResponse after the CertID.
          const certId = requests[i]!.subarray(8);
          const at = der.indexOf(certId);
          if (at < 0 || der[at + certId.length] !== 0xa1) still.push(i);
        }
      }),
    );
    return still;
  };
  // Before: every one is good.
  const before = await pass(serials.map((_, i) => i));
  if (before.length !== requestCount) throw new Error(`${requestCount - before.length} devices reported revoked before the request`);

  const officer = await issueApiToken(revoking.pool, { site: 'a', actor: 'bench', name: 'bench-officer', role: 'revocation-officer', manufacturerId: null, expiresDays: 1 });
  const client = new FleetApiClient(`http://127.0.0.1:${ports.api}`, officer);
  const approver = new FleetApiClient(`http://127.0.0.1:${ports.api}`, await issueApiToken(revoking.pool, { site: 'a', actor: 'bench', name: 'bench-second-officer', role: 'revocation-officer', manufacturerId: null, expiresDays: 1 }));
  const devices = Array.from({ length: requestCount }, (_, i) => syntheticEui64(i + 1));
  t = performance.now();
  // Dual control: above the threshold one officer requests, a second approves, the first executes.
  const outcome = await revokeUnderDualControl(client, approver, { devices }, 'keyCompromise');
  const requestSeconds = seconds(t);
  if (outcome.revoked !== requestCount) throw new Error(`the request revoked ${outcome.revoked} of ${requestCount}`);
  log(`  request answered in ${requestSeconds} s: ${outcome.revoked} revoked in ${outcome.crlShards.length} shards`);
  let pending = serials.map((_, i) => i);
  let passes = 0;
  while (pending.length > 0) {
    pending = await pass(pending);
    passes++;
    log(`  ${seconds(t)} s: ${requestCount - pending.length}/${requestCount} reported revoked by OCSP`);
  }
  const allRevokedSeconds = seconds(t);
  revocationResult = { devices: requestCount, request_s: requestSeconds, all_revoked_in_ocsp_s: allRevokedSeconds, ocsp_passes: passes };
  log(`  every device revoked in OCSP ${allRevokedSeconds} s after the request was sent (${passes} polling passes)`);
} finally {
  await Promise.all([api, responder].map(stopProcess));
  await revoking.drop();
}

console.log(JSON.stringify({ benchmark: 'crl', raw_hsm_signatures_per_s: Math.round(rawRate), publishing: publishResult, revocation_to_ocsp: revocationResult }));
