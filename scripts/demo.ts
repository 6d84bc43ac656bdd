/**
 * The README's first command ends here: a tour of what fleetpki does on this machine, with figures.
 * It grows with each capability (ceremony, factory batch, revocation, failover drill).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '@fleetpki/core';
import { issueApiToken, runCeremony } from '@fleetpki/ca';
import { hsmSelfTest, openSiteKeyStore } from '@fleetpki/hsm';
import { ROOT_TOKEN_LABEL, formatStatus, sitesStatus, sitesUp } from '@fleetpki/sites';
import { createPool, migrate, readSiteStates, upsertManufacturer } from '@fleetpki/store';
import { generateDeviceKeys, toPem } from '@fleetpki/x509';
import { euiGenerator, percentile } from './lib/bench.js';
import { startService, stopProcess, waitForHttp } from './lib/services.js';

function heading(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

const config = loadConfig();

heading('1. Sites: SoftHSM tokens, PostgreSQL primary (A) with synchronous hot standby (B), Redis per site');
let started = Date.now();
await sitesUp(config, (line) => console.log(`  ${line}`));
console.log(`  (${Date.now() - started} ms)`);

heading('2. Database schema');
const pool = createPool(config.sites.a.databaseUrl, { max: 1 });
try {
  const result = await migrate(pool, join(config.repoRoot, 'migrations'));
  console.log(`  ${result.alreadyApplied + result.applied.length} migrations in place (${result.applied.length} applied now)`);
} finally {
  await pool.end();
}

heading("3. HSM smoke test on site A's token");
const store = await openSiteKeyStore(config);
try {
  started = Date.now();
  const r = await hsmSelfTest(store, 'self-test', 2_000);
  console.log(`  token ${r.token}: P-256 key "${r.keyLabel}" ${r.keyCreated ? 'generated' : 'present'}; signature verified by node:crypto: ${r.signatureVerified}`);
  console.log(`  private key CKA_SENSITIVE: ${r.privateKeySensitive}; raw signing rate, one session: ${r.signaturesPerSecond} signatures/s`);
  if (!r.signatureVerified || !r.privateKeySensitive) process.exitCode = 1;
} finally {
  await store.close();
}

heading('4. Key ceremony: offline root, device issuing CA, organisation CA (keys generated in the HSM)');
const outDir = join(config.stateDir, 'demo');
mkdirSync(outDir, { recursive: true });
const db = createPool(config.sites.a.databaseUrl, { max: 4, applicationName: 'fleetpki-demo' });
try {
  const state = (await readSiteStates(db)).find((s) => s.site === 'a')!;
  const rootKeyStore = await openSiteKeyStore(config, config.sites.a, { tokenLabel: ROOT_TOKEN_LABEL, sessions: 1 });
  const siteKeyStore = await openSiteKeyStore(config, config.sites.a, { sessions: 1 });
  try {
    const { created, chain } = await runCeremony({ pool: db, rootKeyStore, siteKeyStore, site: 'a', serialPrefix: state.serialPrefix, actor: 'demo' });
    console.log(`  ${created ? 'hierarchy created' : 'hierarchy already present; every CA key matches its certificate'}`);
    for (const ca of chain) console.log(`  ${ca.id.padEnd(5)} ${ca.kind.padEnd(15)} ${ca.subjectDn.padEnd(45)} ${ca.keyUri}`);
    const pem = (id: string) => toPem(chain.find((c) => c.id === id)!.certificate);
    writeFileSync(join(outDir, 'root.pem'), pem('root'));
    writeFileSync(join(outDir, 'issuing.pem'), pem('fpd1'));
  } finally {
    await siteKeyStore.close();
    await rootKeyStore.close();
  }

  heading('5. Online enrolment over HTTP (issuer-api process, factory token, CSRs with proof of possession)');
  await upsertManufacturer(db, 'demo-meters', 'Demo Meters Ltd');
  const token = await issueApiToken(db, { site: 'a', actor: 'demo', name: 'demo-factory', role: 'factory', manufacturerId: 'demo-meters', expiresDays: 1 });
  const api = startService(config, 'issuer-api', { FLEETPKI_SITE: 'a' });
  try {
    const base = `http://127.0.0.1:${config.sites.a.apiPort}`;
    await waitForHttp(`${base}/readyz`);
    const devices = 2_000;
    const keys = generateDeviceKeys(devices);
    const eui = euiGenerator();
    const latencies: number[] = [];
    const sizes = new Map<string, number>();
    let next = 0;
    let lastPem = '';
    started = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < devices; i = next++) {
          const profile = i % 2 === 0 ? 'smart-meter' : 'smart-meter-compact';
          const t0 = performance.now();
          const res = await fetch(`${base}/v1/enrolments`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ eui64: eui(i), keyRole: 'digitalSignature', profile, csr: keys[i]!.csr.toString('base64') }),
          });
          const body = (await res.json()) as { certificate: string; code?: string; message?: string };
          if (res.status !== 201) throw new Error(`enrolment failed: ${res.status} ${body.code}: ${body.message}`);
          latencies.push(performance.now() - t0);
          sizes.set(profile, Buffer.from(body.certificate.replace(/-----[^-]+-----|\s/g, ''), 'base64').length);
          lastPem = body.certificate;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(`  ${devices} certificates in ${seconds.toFixed(2)} s: ${Math.round(devices / seconds)}/s, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms (32 clients)`);
    for (const [profile, size] of sizes) console.log(`  ${profile}: ${size} bytes DER`);
    const certPath = join(outDir, 'device.pem');
    writeFileSync(certPath, lastPem);
    const verified = execFileSync('openssl', ['verify', '-CAfile', join(outDir, 'root.pem'), '-untrusted', join(outDir, 'issuing.pem'), certPath], { encoding: 'utf8' }).trim();
    console.log(`  openssl verify: ${verified}`);
  } finally {
    await stopProcess(api);
  }
} finally {
  await db.end();
}

heading('6. Status');
console.log(
  formatStatus(await sitesStatus(config))
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
);
console.log('\nStop everything with `pnpm sites down`; data stays in .fleetpki/ for the next `pnpm sites up`.');
