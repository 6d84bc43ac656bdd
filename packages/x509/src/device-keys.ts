import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { buildMinimalCsr } from './csr.js';

export interface DeviceKeyMaterial {
  readonly publicKeySpki: Buffer;
  readonly csr: Buffer;
  readonly privateKey: KeyObject;
}

/**
 * P-256 key pairs and their minimal CSRs, made with node:crypto, as a device would make them. For test
 * manifests, benchmarks and tests: real devices generate their keys inside their own secure element.
 */
export function generateDeviceKeys(count: number): DeviceKeyMaterial[] {
  const out: DeviceKeyMaterial[] = [];
  for (let i = 0; i < count; i++) {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    out.push({ publicKeySpki: spki, csr: buildMinimalCsr(spki, (info) => sign('sha256', info, privateKey)), privateKey });
  }
  return out;
}
