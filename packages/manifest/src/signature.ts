import { createPublicKey, createSign, createVerify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { FleetError } from '@fleetpki/core';

/**
 * A manifest signature is ECDSA P-256 with SHA-256 over the manifest's exact bytes (DER signature,
 * base64 in the X-Manifest-Signature header). It stands in for the proof of possession that raw public
 * keys lack: the factory's registered key vouches for every key in the file.
 */
export const MANIFEST_SIGNATURE_HEADER = 'x-manifest-signature';

/** Checks a signature as the bytes stream past; `verify()` once the upload ends. */
export class ManifestSignatureCheck {
  private readonly verifier = createVerify('sha256');
  private readonly signature: Buffer;

  constructor(
    private readonly factoryKeySpki: Buffer,
    signatureBase64: string,
  ) {
    this.signature = Buffer.from(signatureBase64, 'base64');
    if (this.signature.length < 8 || this.signature.length > 80) throw new FleetError('MANIFEST_SIGNATURE_INVALID', 'X-Manifest-Signature is not a base64 DER ECDSA signature', { httpStatus: 400 });
  }

  update(chunk: Buffer): void {
    this.verifier.update(chunk);
  }

  verify(): boolean {
    const key = createPublicKey({ key: this.factoryKeySpki, format: 'der', type: 'spki' });
    return this.verifier.verify(key, this.signature);
  }
}

/** Signs a manifest file with the factory's key (CLI and test manifests). */
export async function signManifestFile(path: string, privateKey: KeyObject): Promise<string> {
  const signer = createSign('sha256');
  for await (const chunk of createReadStream(path)) signer.update(chunk as Buffer);
  return signer.sign(privateKey).toString('base64');
}
