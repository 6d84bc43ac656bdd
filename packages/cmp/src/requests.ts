import { randomBytes } from 'node:crypto';
import { derTlv } from '@fleetpki/x509';
import type { InfoTypeAndValue } from './message-types.js';
import { OID_PASSWORD_BASED_MAC, RESPONSE_PBM_ITERATIONS, passwordBasedMac, type PbmParameters } from './protection.js';
import { derGeneralizedTime, derInteger, derOid, pbmParameters } from './responses.js';

/**
 * CMP requests a client of this CA sends (RFC 9483 as the client side): a general message (genm,
 * RFC 9483 4.3) MAC-protected with a factory's shared secret. Encoded with the same helpers as the
 * responses, so both sides of our CMP share one DER writer.
 */

export interface GenmRequestOptions {
  /** The shared secret's reference: senderKID, how the CA finds the secret (RFC 9483 3.1). */
  readonly reference: string;
  readonly secret: Buffer;
  /** What is asked, each with its value when the infoType takes one (rootCaCert: the root held). */
  readonly infos: readonly InfoTypeAndValue[];
  /** PasswordBasedMac iterations; OpenSSL's default (RESPONSE_PBM_ITERATIONS) when absent. The CA takes 1 to MAX_PBM_ITERATIONS. */
  readonly iterations?: number;
}

const seq = (...parts: Buffer[]) => derTlv(0x30, Buffer.concat(parts));
const explicit = (n: number, inner: Buffer) => derTlv(0xa0 | n, inner);
const octets = (b: Buffer) => derTlv(0x04, b);
/** GeneralName directoryName [4] holding the empty Name: the NULL-DN of a sender known by its senderKID only (RFC 9483 3.1). */
const NULL_DN = explicit(4, seq());
const BODY_GENM = 21;

/**
 * A genm PKIMessage: pvno cmp2000 (nothing of cmp2021 is used, RFC 9480 2.20), sender and recipient
 * NULL-DN, senderKID the reference, a fresh 128-bit transactionID and senderNonce (RFC 9483 3.1), and
 * PasswordBasedMac protection (RFC 4210 5.1.3.1) with SHA-256, HMAC-SHA-256 and a random salt.
 */
export function buildGenmRequest(options: GenmRequestOptions): Buffer {
  const pbm: PbmParameters = { salt: randomBytes(16), owf: 'sha256', iterations: options.iterations ?? RESPONSE_PBM_ITERATIONS, mac: 'sha256' };
  const header = seq(
    derInteger(2),
    NULL_DN,
    NULL_DN,
    explicit(0, derGeneralizedTime(new Date())),
    explicit(1, seq(derOid(OID_PASSWORD_BASED_MAC), pbmParameters(pbm))),
    explicit(2, octets(Buffer.from(options.reference, 'utf8'))),
    explicit(4, octets(randomBytes(16))),
    explicit(5, octets(randomBytes(16))),
  );
  const body = explicit(BODY_GENM, seq(...options.infos.map((info) => seq(derOid(info.infoType), info.value ?? Buffer.alloc(0)))));
  // ProtectedPart ::= SEQUENCE { header, body }: what the MAC covers (RFC 4210 5.1.3).
  const mac = passwordBasedMac(options.secret, pbm, seq(header, body));
  return seq(header, body, explicit(0, derTlv(0x03, Buffer.concat([Buffer.from([0]), mac]))));
}
