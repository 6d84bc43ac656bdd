/**
 * pnpm bench sign [--seconds S] [--threads 1,2,4] [--json] [--deadline S]
 * The signer alone, in one process, on site A's token: graphene's async path (C_SignInit on the main
 * thread, C_Sign on the libuv pool; 4 sessions) against the signing threads (C_SignInit + C_Sign on the
 * thread), each with every signature verified and with 1 in 64 verified (r and s range-checked always).
 * Prints signatures/s and core-microseconds per signature (the process's CPU time, every thread).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { benchOptions } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, threads: { type: 'string', default: '1,2,3' }, ...benchOptions(300) } });
const run = new BenchRun('sign', { deadlineSeconds: Number(args.deadline), json: args.json });

interface Measured {
  readonly signer: string;
  readonly check: string;
  readonly signatures_per_s: number;
  readonly core_us_per_signature: number;
}

await run.main(async () => {
  const seconds = Number(args.seconds);
  const results: Measured[] = [];
  const modes: { name: string; threads: number }[] = [{ name: 'libuv (4 sessions)', threads: 0 }, ...args.threads.split(',').map((t) => ({ name: `${t} signing thread(s)`, threads: Number(t) }))];
  for (const mode of modes) {
    for (const check of ['all', '1-in-64']) {
      const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a', FLEETPKI_SIGNATURE_CHECK: check });
      run.begin(`${mode.name}, check ${check}, ${seconds} s`);
      const store = await openSiteKeyStore(config, config.sites.a, { sessions: 4, signingThreads: mode.threads });
      try {
        if (!(await store.hasKey('self-test'))) await store.generateSigningKey('self-test');
        const signer = await store.getSigner('self-test');
        const data = randomBytes(300);
        await Promise.all(Array.from({ length: 64 }, () => signer.sign(data))); // threads started, keys found
        // Enough outstanding to keep every thread's slices full, as a batch chunk does.
        const outstanding = Math.max(16, mode.threads * 128);
        let count = 0;
        const deadline = Date.now() + seconds * 1000;
        const cpu = process.cpuUsage();
        const started = performance.now();
        await Promise.all(
          Array.from({ length: outstanding }, async () => {
            while (Date.now() < deadline) {
              await signer.sign(data);
              count++;
            }
          }),
        );
        const elapsed = (performance.now() - started) / 1000;
        const used = process.cpuUsage(cpu);
        const m: Measured = { signer: mode.name, check, signatures_per_s: Math.round(count / elapsed), core_us_per_signature: Math.round((used.user + used.system) / count) };
        results.push(m);
        run.log(`  ${m.signatures_per_s} signatures/s, ${m.core_us_per_signature} core-us per signature`);
      } finally {
        await store.close();
      }
    }
  }
  const raw = Math.max(...results.map((r) => r.signatures_per_s));
  return { results, raw_hsm_signatures_per_s: raw };
});
