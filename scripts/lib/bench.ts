import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { join } from 'node:path';
import type { FleetConfig } from '@fleetpki/core';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { buildMinimalCsr } from '@fleetpki/x509';

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

export interface DeviceKeyMaterial {
  readonly publicKeySpki: Buffer;
  readonly csr: Buffer;
}

/** P-256 key pairs and their minimal CSRs, made in bulk with node:crypto. */
export function generateDeviceKeys(count: number): DeviceKeyMaterial[] {
  const out: DeviceKeyMaterial[] = [];
  for (let i = 0; i < count; i++) {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ format: 'der', type: 'spki' }) as Buffer;
    out.push({ publicKeySpki: spki, csr: buildMinimalCsr(spki, (info) => sign('sha256', info, privateKey)) });
  }
  return out;
}

/** A random EUI-64 prefix per run, so repeated benchmarks never collide with enrolled devices. */
export function euiGenerator(): (i: number) => string {
  const base = createHash('sha256').update(randomBytes(16)).digest().subarray(0, 3).toString('hex').toUpperCase();
  return (i) => `F0${base}${i.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** Starts a service (services/NAME/src/main.ts) as its own process, as it runs in production. */
export function startService(config: FleetConfig, name: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  // FLEETPKI_SERVICE_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the service under load.
  const extra = process.env.FLEETPKI_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, '--conditions=fleetpki-source', '--import', 'tsx', join(config.repoRoot, 'services', name, 'src', 'main.ts')], {
    env: { ...process.env, FLEETPKI_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return child;
}

export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
  });
}
