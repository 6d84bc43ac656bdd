import { ECDSA_WITH_SHA256_ALGID, TAG, derLength, derTime, derTlv } from './der.js';
import { expectTlv, readTlv } from './der-reader.js';

/**
 * CRLs (RFC 5280 5) assembled as bytes. Hand-written because a shard CRL can carry hundreds of
 * thousands of entries and pkijs builds an object graph per entry (seconds for a million); here each
 * entry is ~30 bytes copied into one buffer.
 */

/** RFC 5280 5.3.1 CRLReason. 7 is not used. */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type CrlReasonName = keyof typeof CRL_REASONS;

export interface CrlEntry {
  readonly serial: Buffer;
  readonly revokedAt: Date;
  readonly reason: number;
}

export interface CrlRequest {
  /** DER Name of the issuing CA (its certificate's subject). */
  readonly issuerSubjectDer: Buffer;
  readonly issuerKeyId: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly crlNumber: bigint;
  /**
   * What the CRL covers (its issuingDistributionPoint, RFC 5280 5.2.5): a device CRL shard names its
   * URL, which is the certificates' CRL DP (they must match), and covers user certificates only; the
   * root's ARL covers CA certificates only and names no distribution point.
   */
  readonly scope: { readonly userCertsAt: string } | { readonly caCertsOnly: true };
  readonly entries: readonly CrlEntry[];
  /** A delta CRL (RFC 5280 5.2.4): deltaCRLIndicator names the base CRL number. */
  readonly baseCrlNumber?: bigint;
  /** A full CRL points at its delta with freshestCRL (RFC 5280 5.2.6). */
  readonly freshestUrl?: string;
}

const OID_DER = {
  authorityKeyIdentifier: Buffer.from('0603551d23', 'hex'),
  cRLNumber: Buffer.from('0603551d14', 'hex'),
  deltaCRLIndicator: Buffer.from('0603551d1b', 'hex'),
  issuingDistributionPoint: Buffer.from('0603551d1c', 'hex'),
  freshestCRL: Buffer.from('0603551d2e', 'hex'),
  reasonCode: Buffer.from('0603551d15', 'hex'),
};
const CRITICAL = Buffer.from('0101ff', 'hex');

/** A positive INTEGER from unsigned big-endian bytes (X.690 8.3: a leading 0x00 when the top bit is set). */
export function derUnsignedInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1]! & 0x80) === 0) start++;
  const body = Buffer.from(bytes.subarray(start));
  return derTlv(TAG.INTEGER, body[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body);
}

export function derBigInt(n: bigint): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return derUnsignedInteger(Buffer.from(hex, 'hex'));
}

function extension(oid: Buffer, value: Buffer, critical = false): Buffer {
  return derTlv(TAG.SEQUENCE, Buffer.concat([oid, ...(critical ? [CRITICAL] : []), derTlv(TAG.OCTET_STRING, value)]));
}

/** DistributionPointName fullName with one URI: [0] { [0] { [6] uri } } (RFC 5280 4.2.1.13; a CHOICE, so explicit). */
function distributionPointName(url: string): Buffer {
  return derTlv(0xa0, derTlv(0xa0, derTlv(0x86, Buffer.from(url, 'ascii'))));
}

function encodeEntries(entries: readonly CrlEntry[]): Buffer {
  const parts: Buffer[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const serial = derUnsignedInteger(e.serial);
    const time = derTime(e.revokedAt);
    // RFC 5280 5.3.1: reasonCode absent rather than unspecified.
    const ext = e.reason === 0 ? undefined : derTlv(TAG.SEQUENCE, extension(OID_DER.reasonCode, Buffer.from([0x0a, 0x01, e.reason])));
    const length = serial.length + time.length + (ext?.length ?? 0);
    parts[i] = Buffer.concat([Buffer.from([TAG.SEQUENCE]), derLength(length), serial, time, ...(ext ? [ext] : [])]);
  }
  return derTlv(TAG.SEQUENCE, Buffer.concat(parts));
}

/** TBSCertList (RFC 5280 5.1.2), v2, ecdsa-with-SHA256; sign it and wrap with assembleSignedCertificate. */
export function buildCrlTbs(req: CrlRequest): Buffer {
  const extensions: Buffer[] = [
    extension(OID_DER.authorityKeyIdentifier, derTlv(TAG.SEQUENCE, derTlv(0x80, req.issuerKeyId))),
    extension(OID_DER.cRLNumber, derBigInt(req.crlNumber)),
  ];
  if (req.baseCrlNumber !== undefined) extensions.push(extension(OID_DER.deltaCRLIndicator, derBigInt(req.baseCrlNumber), true));
  // RFC 5280 5.2.5: critical. Device CRLs: their DP and onlyContainsUserCerts [1]; the ARL: onlyContainsCACerts [2].
  const idp = 'userCertsAt' in req.scope ? Buffer.concat([distributionPointName(req.scope.userCertsAt), Buffer.from('8101ff', 'hex')]) : Buffer.from('8201ff', 'hex');
  extensions.push(extension(OID_DER.issuingDistributionPoint, derTlv(TAG.SEQUENCE, idp), true));
  if (req.freshestUrl) extensions.push(extension(OID_DER.freshestCRL, derTlv(TAG.SEQUENCE, derTlv(TAG.SEQUENCE, distributionPointName(req.freshestUrl)))));
  const parts = [
    Buffer.from('020101', 'hex'), // version v2
    ECDSA_WITH_SHA256_ALGID,
    req.issuerSubjectDer,
    derTime(req.thisUpdate),
    derTime(req.nextUpdate),
    ...(req.entries.length > 0 ? [encodeEntries(req.entries)] : []), // RFC 5280 5.1.2.6: absent when empty
    derTlv(0xa0, derTlv(TAG.SEQUENCE, Buffer.concat(extensions))),
  ];
  return derTlv(TAG.SEQUENCE, Buffer.concat(parts));
}

/**
 * Reads the serials listed in a DER CRL (CertificateList), for the publisher's completeness guard: what
 * is about to be published is read back and compared with the store.
 */
export function readCrlSerials(der: Buffer): Buffer[] {
  const list = expectTlv(der, 0, TAG.SEQUENCE, 'CertificateList');
  const tbs = expectTlv(der, list.contentStart, TAG.SEQUENCE, 'tbsCertList', list.end);
  let at = tbs.contentStart;
  for (let i = 0; i < 5; i++) at = readTlv(der, at, tbs.end).end; // version, signature, issuer, thisUpdate, nextUpdate
  const serials: Buffer[] = [];
  if (at >= tbs.end) return serials;
  const revoked = readTlv(der, at, tbs.end);
  if (revoked.tag !== TAG.SEQUENCE) return serials; // [0] crlExtensions: no entries
  for (let e = revoked.contentStart; e < revoked.end; ) {
    const entry = expectTlv(der, e, TAG.SEQUENCE, 'revokedCertificate', revoked.end);
    const serial = expectTlv(der, entry.contentStart, TAG.INTEGER, 'userCertificate', entry.end);
    let bytes = der.subarray(serial.contentStart, serial.end);
    while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
    serials.push(Buffer.from(bytes));
    e = entry.end;
  }
  return serials;
}
