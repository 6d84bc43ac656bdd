/**
 * node [--jitless] --conditions=fleetpki-source --import tsx scripts/jitless-probe.ts [--seconds S]
 * What MemoryDenyWriteExecute=yes would cost a service (docs/deploy.md, "Security"): V8's JIT needs
 * pages that are writable and then executable, which MemoryDenyWriteExecute refuses, so a Node service
 * can take it only with --jitless. Run this once as is and once with --jitless (and under a seccomp
 * filter refusing W+X, to prove the path works): it times loading the status responder's module graph,
 * then an OCSP responder's hot path in one process (parse a request, build the response data, sign it
 * in site A's token through the PKCS#11 module, assemble), and prints both with the process's CPU time.
 */
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const started = performance.now();
const cpuAtStart = process.cpuUsage();
const { loadConfig } = await import('@fleetpki/core');
const { openSiteKeyStore } = await import('@fleetpki/hsm');
const x509 = await import('@fleetpki/x509');
await import('@fleetpki/ca');
const importMs = performance.now() - started;
const importCpu = process.cpuUsage(cpuAtStart);

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
const store = await openSiteKeyStore(config, config.sites.a, { sessions: 4, signingThreads: 0 });
try {
  if (!(await store.hasKey('self-test'))) await store.generateSigningKey('self-test');
  const signer = await store.getSigner('self-test');
  const issuer = x509.ocspIssuerHashes(randomBytes(60), Buffer.concat([randomBytes(26), Buffer.from([4]), randomBytes(64)]));
  const respond = async (): Promise<number> => {
    const serial = randomBytes(16);
    serial[0]! &= 0x7f;
    const [certId] = x509.parseOcspRequest(x509.buildOcspRequest(x509.buildCertId('sha1', issuer, serial)));
    const now = new Date();
    const data = x509.buildOcspResponseData(issuer, now, [{ hashAlgorithm: 'sha1', serial: certId!.serial, status: { status: 'good' }, thisUpdate: now, nextUpdate: new Date(now.getTime() + 3_600_000) }]);
    return x509.assembleOcspResponse(data, await signer.sign(createHash('sha256').update(data).digest())).length;
  };
  for (let i = 0; i < 200; i++) await respond(); // sessions open, code warm
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let responses = 0;
  while (performance.now() - t0 < Number(args.seconds) * 1000) {
    await Promise.all(Array.from({ length: 16 }, respond));
    responses += 16;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    JSON.stringify({
      node: process.version,
      jitless: process.execArgv.includes('--jitless'),
      import_ms: Math.round(importMs),
      import_cpu_ms: Math.round((importCpu.user + importCpu.system) / 1000),
      ocsp_responses_per_s: Math.round(responses / seconds),
      core_us_per_response: Math.round((cpu.user + cpu.system) / responses),
      rss_mb: Math.round(process.memoryUsage().rss / 1048576),
    }),
  );
} finally {
  await store.close();
}
