import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { KeyRole } from '@fleetpki/core';

export interface GenerateOptions {
  readonly devices: number;
  readonly out: string;
  /** Key roles per device: one certificate each. */
  readonly roles?: readonly KeyRole[];
  /** 'csr' (proof of possession in the file) or 'publicKey' (the manifest must then be signed). */
  readonly keyForm?: 'csr' | 'publicKey';
  readonly deviceType?: string;
  /**
   * First 3-5 bytes (6-10 hex digits) of every EUI-64, a counter fills the rest; random by default so
   * repeated runs never collide. A manufacturer enrols only inside its registered ranges: give
   * `syntheticRunPrefix(manufacturer)` for one whose block is `syntheticEuiBlock(manufacturer)`.
   */
  readonly euiPrefix?: string;
  readonly threads?: number;
  readonly onProgress?: (devicesWritten: number) => void;
}

export interface GenerateRequest {
  readonly first: number;
  readonly count: number;
  readonly roles: readonly KeyRole[];
  readonly keyForm: 'csr' | 'publicKey';
  readonly deviceType: string;
  readonly euiPrefix: string;
}

const CHUNK = 500;

/** EUI-64 of device `index` in a generated manifest: the prefix, then a counter in the remaining digits. */
export function generatedEui64(prefix: string, index: number): string {
  return `${prefix}${index.toString(16).toUpperCase().padStart(16 - prefix.length, '0')}`;
}

/**
 * The EUI-64 block of a synthetic manufacturer (demo, benchmarks, drills, tests): a 3-byte prefix taken
 * from its id's SHA-256, first octet locally administered (IEEE 802 U/L bit set, group bit clear), so
 * synthetic ids never fall in an OUI a real manufacturer holds and two synthetic manufacturers almost
 * never share one (22 bits). Registered like a real OUI: `manufacturers add-range <id> --prefix <block>`.
 */
export function syntheticEuiBlock(manufacturerId: string): string {
  const h = createHash('sha256').update(`fleetpki-synthetic:${manufacturerId}`).digest();
  h[0] = (h[0]! & 0xfc) | 0x02;
  return h.subarray(0, 3).toString('hex').toUpperCase();
}

/** A prefix for one generated manifest or traffic run inside the block: 2 random bytes more (a 3-byte counter follows: 16M devices). */
export function syntheticRunPrefix(manufacturerId: string): string {
  return `${syntheticEuiBlock(manufacturerId)}${randomBytes(2).toString('hex').toUpperCase()}`;
}

/** A random device id inside a synthetic manufacturer's block. */
export function syntheticEui64(manufacturerId: string): string {
  return `${syntheticEuiBlock(manufacturerId)}${randomBytes(5).toString('hex').toUpperCase()}`;
}

/**
 * Writes a test manifest (NDJSON) of `devices` devices with real P-256 keys made by node:crypto, in
 * worker threads (key generation is ~0.2 ms a device, CPU bound). Memory stays flat: each worker has one
 * chunk in flight and the file stream's back-pressure is respected.
 */
export async function generateManifest(options: GenerateOptions): Promise<{ devices: number; keys: number; euiPrefix: string }> {
  const roles = options.roles ?? ['digitalSignature'];
  const keyForm = options.keyForm ?? 'csr';
  const deviceType = options.deviceType ?? 'smart-meter';
  const euiPrefix = (options.euiPrefix ?? `F1${createHash('sha256').update(randomBytes(8)).digest('hex').slice(0, 4)}`).toUpperCase();
  if (!/^[0-9A-F]{6,10}$/.test(euiPrefix)) throw new Error('euiPrefix must be 6-10 hex digits');
  if (options.devices > 16 ** (16 - euiPrefix.length)) throw new Error(`${options.devices} devices do not fit after the ${euiPrefix.length}-digit prefix ${euiPrefix}`);
  const out = createWriteStream(options.out);
  const threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), 8));
  let next = 0;
  let written = 0;
  const work = async (worker: Worker) => {
    while (next < options.devices) {
      const first = next;
      const count = Math.min(CHUNK, options.devices - first);
      next += count;
      const request: GenerateRequest = { first, count, roles, keyForm, deviceType, euiPrefix };
      worker.postMessage(request);
      const [text] = (await once(worker, 'message')) as [string];
      if (!out.write(text)) await once(out, 'drain');
      written += count;
      options.onProgress?.(written);
    }
  };
  // Worker threads inherit the process's --import hooks (tsx in development) on Node 24.
  const workerFile = fileURLToPath(new URL(`./generate-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));
  const workers = Array.from({ length: threads }, () => new Worker(workerFile));
  try {
    await Promise.all(workers.map(work));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  out.end();
  await once(out, 'finish');
  return { devices: options.devices, keys: options.devices * roles.length, euiPrefix };
}

