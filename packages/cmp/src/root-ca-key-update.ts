import { DerError, childrenOf, derTlv, expectTlv } from '@fleetpki/x509';
import { CmpMessageError } from './message-types.js';

/**
 * Root CA key update (RFC 9483 4.3.2, RFC 9480 2.14/2.15): a client sends the root it trusts in a genm
 * (id-it-rootCaCert) and gets the new root with its link certificates back in the genp
 * (id-it-rootCaKeyUpdate). The content is written by the CA (packages/ca) and read by clients
 * (packages/client): one definition of its syntax, here.
 */

/** id-it-rootCaCert: RootCaCertValue ::= CMPCertificate, the root the client holds. */
export const OID_IT_ROOT_CA_CERT = '1.3.6.1.5.5.7.4.20';
/** id-it-rootCaKeyUpdate: RootCaKeyUpdateValue ::= RootCaKeyUpdateContent, absent when there is no update. */
export const OID_IT_ROOT_CA_KEY_UPDATE = '1.3.6.1.5.5.7.4.18';

/** Each a Certificate's DER (CMPCertificate's x509v3PKCert: the only choice this CA uses). */
export interface RootCaKeyUpdateContent {
  readonly newWithNew: Buffer;
  /** The new root's key certified by the old root: what a client holding the old root checks the new one with. */
  readonly newWithOld?: Buffer;
  /** The old root's key certified by the new root. */
  readonly oldWithNew?: Buffer;
}

const SEQUENCE = 0x30;
const NEW_WITH_OLD = 0xa0;
const OLD_WITH_NEW = 0xa1;

/**
 * RootCaKeyUpdateContent ::= SEQUENCE { newWithNew CMPCertificate, newWithOld [0] CMPCertificate
 * OPTIONAL, oldWithNew [1] CMPCertificate OPTIONAL }. The CMP modules use EXPLICIT TAGS (and
 * CMPCertificate is a CHOICE, which is always tagged explicitly), so [0] and [1] wrap the Certificate.
 */
export function encodeRootCaKeyUpdateContent(content: RootCaKeyUpdateContent): Buffer {
  return derTlv(SEQUENCE, Buffer.concat([content.newWithNew, content.newWithOld ? derTlv(NEW_WITH_OLD, content.newWithOld) : Buffer.alloc(0), content.oldWithNew ? derTlv(OLD_WITH_NEW, content.oldWithNew) : Buffer.alloc(0)]));
}

/** Reads a RootCaKeyUpdateContent; anything else is a CmpMessageError badDataFormat. */
export function readRootCaKeyUpdateContent(der: Buffer): RootCaKeyUpdateContent {
  try {
    const outer = expectTlv(der, 0, SEQUENCE, 'RootCaKeyUpdateContent');
    if (outer.end !== der.length) throw new DerError('bytes after the RootCaKeyUpdateContent');
    const [first, ...rest] = childrenOf(der, outer);
    if (!first || first.tag !== SEQUENCE) throw new DerError('RootCaKeyUpdateContent: newWithNew is not a certificate');
    const out: { -readonly [K in keyof RootCaKeyUpdateContent]?: RootCaKeyUpdateContent[K] } = { newWithNew: Buffer.from(der.subarray(first.start, first.end)) };
    let last = 0;
    for (const field of rest) {
      if ((field.tag !== NEW_WITH_OLD && field.tag !== OLD_WITH_NEW) || field.tag <= last) throw new DerError(`RootCaKeyUpdateContent: unexpected field tag 0x${field.tag.toString(16)}`);
      last = field.tag;
      const [certificate, extra] = childrenOf(der, field);
      if (!certificate || certificate.tag !== SEQUENCE || extra) throw new DerError(`RootCaKeyUpdateContent [${field.tag & 0x1f}]: not one certificate`);
      out[field.tag === NEW_WITH_OLD ? 'newWithOld' : 'oldWithNew'] = Buffer.from(der.subarray(certificate.start, certificate.end));
    }
    return out as RootCaKeyUpdateContent;
  } catch (err) {
    if (err instanceof DerError || err instanceof RangeError) throw new CmpMessageError(`not a RootCaKeyUpdateContent: ${err.message}`, 'badDataFormat');
    throw err;
  }
}
