import { createPublicKey, randomBytes, verify } from 'node:crypto';
import type { KeyStore } from './key-store.js';

export interface SelfTestResult {
  readonly token: string;
  readonly keyLabel: string;
  readonly keyCreated: boolean;
  readonly signatureVerified: boolean;
  readonly privateKeySensitive: boolean;
  readonly signaturesPerSecond: number;
}

/**
 * A power-on style check that the token works end to end: a P-256 key exists (created on first use),
 * it signs, node:crypto verifies the signature with the public key read from the token, and the
 * private key is marked sensitive. Also measures a short raw signing rate.
 */
export async function hsmSelfTest(store: KeyStore, keyLabel = 'self-test', samples = 200): Promise<SelfTestResult> {
  const keyCreated = !(await store.hasKey(keyLabel));
  if (keyCreated) await store.generateSigningKey(keyLabel);
  const signer = await store.getSigner(keyLabel);
  const message = randomBytes(64);
  const signature = await signer.sign(message);
  const publicKey = createPublicKey({ key: signer.publicKeySpki, format: 'der', type: 'spki' });
  const signatureVerified = verify('sha256', message, publicKey, signature);
  const info = await store.describeKey(keyLabel);
  const started = process.hrtime.bigint();
  for (let i = 0; i < samples; i++) await signer.sign(message);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { token: store.tokenLabel, keyLabel, keyCreated, signatureVerified, privateKeySensitive: info.sensitive, signaturesPerSecond: Math.round(samples / seconds) };
}
