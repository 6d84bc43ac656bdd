import { randomBytes } from 'node:crypto';
import { derTlv } from '@fleetpki/x509';
import { OID_PASSWORD_BASED_MAC, RESPONSE_PBM_ITERATIONS, inlinePbm, type PbmComputer, type PbmParameters } from './protection.js';
import type { CmpMessageError, PkiMessage } from './pki-message.js';

/**
 * CMP responses (RFC 4210 5.3, RFC 9483 4): ip/cp/kup, error, pkiconf, rp, genp, protected by a MAC
 * with the request's shared secret or by a signature of the CA's CMP protection key. Encoded by hand
 * with the DER helpers of @fleetpki/x509, for the reason pki-message.ts gives.
 */

/** PKIFailureInfo bit numbers (RFC 4210 5.2.3). */
const FAIL_INFO_BITS: Record<CmpMessageError['failInfo'], number> = {
  badAlg: 0,
  badMessageCheck: 1,
  badRequest: 2,
  badTime: 3,
  badCertId: 4,
  badDataFormat: 5,
  wrongAuthority: 6,
  incorrectData: 7,
  missingTimeStamp: 8,
  badPOP: 9,
  certRevoked: 10,
  badRecipientNonce: 13,
  badSenderNonce: 18,
  transactionIdInUse: 21,
  unsupportedVersion: 22,
  notAuthorized: 23,
  systemUnavail: 24,
  systemFailure: 25,
};

export const PKI_STATUS = { accepted: 0, grantedWithMods: 1, rejection: 2, waiting: 3 } as const;
const OID_IMPLICIT_CONFIRM = '1.3.6.1.5.5.7.4.13';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_HMAC_SHA256 = '1.2.840.113549.2.9';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';

const seq = (...parts: Buffer[]) => derTlv(0x30, Buffer.concat(parts));
const explicit = (n: number, inner: Buffer) => derTlv(0xa0 | n, inner);
const octets = (b: Buffer) => derTlv(0x04, b);
const utf8 = (text: string) => derTlv(0x0c, Buffer.from(text, 'utf8'));
const nullValue = () => Buffer.from([0x05, 0x00]);

export function derInteger(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  do {
    out.unshift(v & 0xff);
    v >>= 8;
  } while (v !== 0 && v !== -1);
  // Keep the sign: a positive value whose top bit is set gets a leading 0x00, a negative one 0xff.
  if (n >= 0 && out[0]! & 0x80) out.unshift(0);
  if (n < 0 && !(out[0]! & 0x80)) out.unshift(0xff);
  return derTlv(0x02, Buffer.from(out));
}

export function derOid(text: string): Buffer {
  const arcs = text.split('.').map(Number);
  const body: number[] = [];
  const push = (v: number) => {
    const chunk = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    body.push(...chunk);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return derTlv(0x06, Buffer.from(body));
}

/** A BIT STRING of named bits (X.690 11.2.2: trailing zero bits dropped). */
function namedBits(bit: number): Buffer {
  const bytes = Buffer.alloc(Math.floor(bit / 8) + 1);
  bytes[Math.floor(bit / 8)] = 0x80 >> bit % 8;
  const unused = 7 - (bit % 8);
  return derTlv(0x03, Buffer.concat([Buffer.from([unused]), bytes]));
}

function statusInfo(status: number, text?: string, failInfo?: CmpMessageError['failInfo']): Buffer {
  return seq(derInteger(status), text ? seq(utf8(text.slice(0, 500))) : Buffer.alloc(0), failInfo ? namedBits(FAIL_INFO_BITS[failInfo]) : Buffer.alloc(0));
}

export type ResponseBody =
  /** ip, cp or kup: the certificate for certReqId (-1 answers a p10cr). */
  | { readonly type: 'ip' | 'cp' | 'kup'; readonly certReqId: number; readonly certificate: Buffer; readonly caPubs?: readonly Buffer[] }
  | { readonly type: 'error'; readonly failInfo: CmpMessageError['failInfo']; readonly text: string }
  | { readonly type: 'pkiconf' }
  | { readonly type: 'rp'; readonly accepted: readonly boolean[] }
  | { readonly type: 'genp'; readonly values: readonly { readonly infoType: string; readonly value?: Buffer }[] };

const BODY_TAGS = { ip: 1, cp: 3, kup: 8, rp: 12, pkiconf: 19, genp: 22, error: 23 } as const;

function encodeBody(body: ResponseBody): Buffer {
  switch (body.type) {
    case 'ip':
    case 'cp':
    case 'kup': {
      const response = seq(derInteger(body.certReqId), statusInfo(PKI_STATUS.accepted), seq(explicit(0, body.certificate)));
      const caPubs = body.caPubs?.length ? explicit(1, seq(...body.caPubs)) : Buffer.alloc(0);
      return explicit(BODY_TAGS[body.type], seq(caPubs, seq(response)));
    }
    case 'error':
      return explicit(BODY_TAGS.error, seq(statusInfo(PKI_STATUS.rejection, body.text, body.failInfo)));
    case 'pkiconf':
      return explicit(BODY_TAGS.pkiconf, nullValue());
    case 'rp':
      return explicit(BODY_TAGS.rp, seq(seq(...body.accepted.map((ok) => statusInfo(ok ? PKI_STATUS.accepted : PKI_STATUS.rejection)))));
    case 'genp':
      return explicit(BODY_TAGS.genp, seq(...body.values.map((v) => seq(derOid(v.infoType), v.value ?? Buffer.alloc(0)))));
  }
}

export type ResponseProtection =
  /** MAC with the secret the request was protected with (RFC 9483 4.1.1: a MAC-protected request gets a MAC-protected response). */
  | { readonly kind: 'mac'; readonly secret: Buffer; readonly senderKid?: Buffer; /** Where the iterations run (inline when absent). */ readonly pbm?: PbmComputer }
  /** The CA's CMP protection key (in the HSM): sign gives a DER ECDSA signature over the data. */
  | { readonly kind: 'signature'; readonly sign: (data: Buffer) => Promise<Buffer>; readonly senderKid: Buffer };

export interface ResponseOptions {
  /** The request answered (its transactionID, nonces and sender are echoed); absent for a request too broken to read. */
  readonly request?: PkiMessage;
  /** The responding CA's (or RA's) name, a Name's DER. */
  readonly sender: Buffer;
  readonly protection?: ResponseProtection;
  /** extraCerts: the protecting certificate first, then its chain. */
  readonly extraCerts?: readonly Buffer[];
  /** Grant implicit confirmation (the client asked for it and the CA allows it). */
  readonly implicitConfirm?: boolean;
  /** The senderNonce to send (a fresh one otherwise); the server keeps it to check the certConf's recipNonce. */
  readonly senderNonce?: Buffer;
  /** For tests: the PBM parameters (a fresh salt otherwise). */
  readonly pbm?: PbmParameters;
  readonly now?: Date;
}

/**
 * PBMParameter (RFC 4210 5.1.3.1) of what we MAC: responses, whatever the request used, and our own
 * requests (requests.ts), with SHA-256 and HMAC-SHA-256 (RFC 9483 4.1.1 recommends them).
 */
export function pbmParameters(p: PbmParameters): Buffer {
  if (p.owf !== 'sha256' || p.mac !== 'sha256') throw new Error('our messages use SHA-256 and HMAC-SHA-256');
  return seq(octets(p.salt), seq(derOid(OID_SHA256)), derInteger(p.iterations), seq(derOid(OID_HMAC_SHA256)));
}

/** A whole PKIMessage answering `options.request` with `body`, protected as `options.protection` says. */
export async function buildResponse(options: ResponseOptions, body: ResponseBody): Promise<Buffer> {
  const request = options.request?.header;
  const protection = options.protection;
  const pbm = protection?.kind === 'mac' ? (options.pbm ?? { salt: randomBytes(16), owf: 'sha256', iterations: RESPONSE_PBM_ITERATIONS, mac: 'sha256' }) : undefined;
  const protectionAlg = protection?.kind === 'mac' ? seq(derOid(OID_PASSWORD_BASED_MAC), pbmParameters(pbm!)) : protection ? seq(derOid(OID_ECDSA_SHA256)) : undefined;
  const senderKid = protection?.kind === 'signature' ? protection.senderKid : protection?.senderKid;
  const header = seq(
    derInteger(2),
    explicit(4, options.sender),
    // The recipient is whoever sent the request (a GeneralName, as sent); NULL-DN when unknown.
    request?.sender ?? explicit(4, seq()),
    explicit(0, derGeneralizedTime(options.now ?? new Date())),
    protectionAlg ? explicit(1, protectionAlg) : Buffer.alloc(0),
    senderKid ? explicit(2, octets(senderKid)) : Buffer.alloc(0),
    request?.transactionId ? explicit(4, octets(request.transactionId)) : Buffer.alloc(0),
    explicit(5, octets(options.senderNonce ?? randomBytes(16))),
    request?.senderNonce ? explicit(6, octets(request.senderNonce)) : Buffer.alloc(0),
    options.implicitConfirm ? explicit(8, seq(seq(derOid(OID_IMPLICIT_CONFIRM), nullValue()))) : Buffer.alloc(0),
  );
  const encodedBody = encodeBody(body);
  const protectedPart = seq(header, encodedBody);
  let protectionBits: Buffer = Buffer.alloc(0);
  if (protection?.kind === 'mac') protectionBits = await (protection.pbm ?? inlinePbm).mac(protection.secret, pbm!, protectedPart);
  else if (protection) protectionBits = await protection.sign(protectedPart);
  return seq(
    header,
    encodedBody,
    protection ? explicit(0, derTlv(0x03, Buffer.concat([Buffer.from([0]), protectionBits]))) : Buffer.alloc(0),
    options.extraCerts?.length ? explicit(1, seq(...options.extraCerts)) : Buffer.alloc(0),
  );
}

/** GeneralizedTime (CMP's messageTime is one, whatever the year; RFC 5280's UTCTime rule is for certificates). */
export function derGeneralizedTime(date: Date): Buffer {
  const iso = date.toISOString();
  return derTlv(0x18, Buffer.from(`${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`, 'latin1'));
}
