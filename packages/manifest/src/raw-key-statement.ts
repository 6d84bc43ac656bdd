import { sign, type KeyObject } from 'node:crypto';

/**
 * What a manufacturer signs for a raw public key enrolled online (no CSR, so no proof of possession):
 * the manufacturer's registered manifest-signing key vouches that this key is this device's, for this
 * key role, as a signed manifest does for a batch. One text, every field canonical, so the factory and
 * the CA build the same bytes:
 *
 *   fleetpki-raw-key/1\n<manufacturer id>\n<EUI-64: 16 upper-case hex digits>\n<key role>\n<base64 of the key's SubjectPublicKeyInfo DER>\n
 *
 * signed with ECDSA P-256 and SHA-256 (DER signature, base64: `publicKeySignature`).
 */
export const RAW_KEY_STATEMENT_FORMAT = 'fleetpki-raw-key/1';

export interface RawKeyStatement {
  readonly manufacturerId: string;
  /** Canonical: 16 upper-case hex digits. */
  readonly eui64: string;
  readonly keyRole: string;
  /** The key's SubjectPublicKeyInfo, DER. */
  readonly spki: Buffer;
}

export function rawKeyStatementBytes(s: RawKeyStatement): Buffer {
  return Buffer.from(`${RAW_KEY_STATEMENT_FORMAT}\n${s.manufacturerId}\n${s.eui64}\n${s.keyRole}\n${s.spki.toString('base64')}\n`, 'utf8');
}

/** The factory's side (tools, tests): the base64 DER signature for `publicKeySignature`. */
export function signRawKeyStatement(s: RawKeyStatement, manufacturerKey: KeyObject): string {
  return sign('sha256', rawKeyStatementBytes(s), manufacturerKey).toString('base64');
}
