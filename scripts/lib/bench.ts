import { createHash, randomBytes } from 'node:crypto';
import type { FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The raw HSM signing rate: one process, `sessions` sessions signing in parallel as fast as they can.
 * Every throughput figure is printed next to this, measured in the same run, as a ratio.
 */
export async function measureRawHsmRate(config: FleetConfig, options: { sessions: number; seconds: number }): Promise<number> {
  const store = await openSiteKeyStore(config, config.sites[config.site], { sessions: options.sessions });
  try {
    if (!(await store.hasKey('self-test'))) await store.generateSigningKey('self-test');
    const signer = await store.getSigner('self-test');
    const data = randomBytes(300);
    let count = 0;
    const deadline = Date.now() + options.seconds * 1000;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: options.sessions * 2 }, async () => {
        while (Date.now() < deadline) {
          await signer.sign(data);
          count++;
        }
      }),
    );
    return count / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await store.close();
  }
}

/** A random EUI-64 prefix per run, so repeated benchmarks never collide with enrolled devices. */
export function euiGenerator(): (i: number) => string {
  const base = createHash('sha256').update(randomBytes(16)).digest().subarray(0, 3).toString('hex').toUpperCase();
  return (i) => `F0${base}${i.toString(16).toUpperCase().padStart(8, '0')}`;
}

