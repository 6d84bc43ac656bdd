import type { ParseArgsConfig } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { syntheticRunPrefix } from '@fleetpki/manifest';
import type { Pool as HttpPool } from 'undici';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The raw HSM signing rate: the token flat out, one process with a signing thread per core (the fastest
 * way this machine signs; `pnpm bench sign` compares the ways), no verification (r and s range-checked
 * only). Every throughput figure is printed next to this, measured in the same run, as a ratio.
 */
export async function measureRawHsmRate(config: FleetConfig, options: { seconds: number; threads?: number }): Promise<number> {
  const threads = options.threads ?? availableParallelism();
  const store = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1, signingThreads: threads, check: { every: 1_000_000 } });
  try {
    if (!(await store.hasKey('self-test'))) await store.generateSigningKey('self-test');
    const signer = await store.getSigner('self-test');
    const data = randomBytes(300);
    await Promise.all(Array.from({ length: 64 }, () => signer.sign(data)));
    let count = 0;
    const deadline = Date.now() + options.seconds * 1000;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: threads * 128 }, async () => {
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

/**
 * Device ids for one run inside a synthetic manufacturer's registered block (registerSyntheticManufacturer),
 * a random prefix per run so repeated benchmarks never collide with enrolled devices.
 */
export function euiGenerator(manufacturerId: string): (i: number) => string {
  const prefix = syntheticRunPrefix(manufacturerId);
  return (i) => `${prefix}${i.toString(16).toUpperCase().padStart(16 - prefix.length, '0')}`;
}


/** Peak resident set size (VmHWM) of a running process, in MB. */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

/**
 * Options every benchmark takes: --json (one JSON object as the last stdout line), --deadline SECONDS
 * (the whole run; see BenchRun) and --hsm-seconds (how long the raw HSM signing rate is measured).
 */
export function benchOptions(deadlineSeconds: number) {
  return {
    json: { type: 'boolean', default: false },
    deadline: { type: 'string', default: String(deadlineSeconds) },
    'hsm-seconds': { type: 'string', default: '3' },
  } as const satisfies ParseArgsConfig['options'];
}

/**
 * Online enrolments as the enrolment benchmarks send them: pre-generated request bodies (key generation
 * would otherwise be timed too), taken in order across every window of a run, each `POST /v1/enrolments`
 * timed until its answer is read (201 expected; anything else ends the run with the answer).
 */
export class TimedEnrolments {
  private next = 0;

  constructor(
    private readonly token: string,
    private readonly bodies: readonly string[],
  ) {}

  /** How many bodies have been sent (later steps number their devices on from here). */
  get taken(): number {
    return this.next;
  }

  /** One enrolment; its latency in ms. */
  async one(http: HttpPool): Promise<number> {
    const body = this.bodies[this.next++];
    if (body === undefined) throw new Error('ran out of pre-generated keys; raise the estimate');
    const t0 = performance.now();
    const res = await http.request({ path: '/v1/enrolments', method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` }, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`enrolment failed: ${res.statusCode} ${text}`);
    return performance.now() - t0;
  }

  /** `clients` clients enrolling back to back for `seconds`: every latency (ms) and the seconds it took. */
  async forSeconds(http: HttpPool, clients: number, seconds: number): Promise<{ latencies: number[]; seconds: number }> {
    const latencies: number[] = [];
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < deadline) latencies.push(await this.one(http));
      }),
    );
    return { latencies, seconds: (performance.now() - started) / 1000 };
  }
}
