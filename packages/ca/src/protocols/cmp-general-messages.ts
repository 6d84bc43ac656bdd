import { CmpMessageError, OID_IT_ROOT_CA_CERT, OID_IT_ROOT_CA_KEY_UPDATE, derOid, encodeRootCaKeyUpdateContent, type InfoTypeAndValue, type ResponseBody } from '@fleetpki/cmp';
import { derTlv } from '@fleetpki/x509';
import type { RootCaKeyUpdate } from '../custody/root-generations.js';

/** What the genm answers come from. */
export interface GeneralMessageSources {
  /** The issuing CA's certificate and the root's, DER (the root last). */
  readonly chainDer: readonly Buffer[];
  /** The root rollovers, oldest generation first: the last one's newWithNew is the current root. */
  readonly rootUpdates?: readonly RootCaKeyUpdate[];
}

const OID_IT_CA_CERTS = '1.3.6.1.5.5.7.4.17';
const OID_IT_SIGN_KEY_PAIR_TYPES = '1.3.6.1.5.5.7.4.3';
const OID_IT_CERT_REQ_TEMPLATE = '1.3.6.1.5.5.7.4.19';
const OID_REG_CTRL_ALG_ID = '1.3.6.1.5.5.7.5.1.11';
const ECDSA_WITH_SHA256 = derTlv(0x30, derOid('1.2.840.10045.4.3.2'));
const P256_ALGORITHM = derTlv(0x30, Buffer.concat([derOid('1.2.840.10045.2.1'), derOid('1.2.840.10045.3.1.7')]));

/**
 * genm (RFC 9483 4.3): the CA certificates, the key types accepted, the certificate request template,
 * and the root CA key update. A genm without infoType asks for the first three (RFC 9483 4.3.1-4.3.3);
 * the root update needs the root the client holds, so it is answered only when asked for.
 */
const MAX_INFO_TYPES = 8;

export function answerGeneralMessage(infos: readonly InfoTypeAndValue[], sources: GeneralMessageSources): ResponseBody {
  const supported: Record<string, () => Buffer> = {
    [OID_IT_CA_CERTS]: () => derTlv(0x30, Buffer.concat(sources.chainDer)),
    [OID_IT_SIGN_KEY_PAIR_TYPES]: () => derTlv(0x30, ECDSA_WITH_SHA256),
    // CertReqTemplateValue ::= SEQUENCE { certTemplate CertTemplate, keySpec Controls }: any subject
    // naming the device, and a P-256 key (id-regCtrl-algId).
    [OID_IT_CERT_REQ_TEMPLATE]: () => derTlv(0x30, Buffer.concat([derTlv(0x30, Buffer.alloc(0)), derTlv(0x30, derTlv(0x30, Buffer.concat([derOid(OID_REG_CTRL_ALG_ID), P256_ALGORITHM])))])),
  };
  // One answer per infoType, and few of them: a 64 KB genm repeating one infoType must not buy a
  // response of megabytes, MAC'd or signed by the CA.
  if (new Set(infos.map((i) => i.infoType)).size !== infos.length) throw new CmpMessageError('a genm names each infoType once', 'badRequest');
  if (infos.length > MAX_INFO_TYPES) throw new CmpMessageError(`a genm asks for at most ${MAX_INFO_TYPES} infoTypes, not ${infos.length}`, 'badRequest');
  const asked: readonly InfoTypeAndValue[] = infos.length ? infos : Object.keys(supported).map((infoType) => ({ infoType }));
  return {
    type: 'genp',
    values: asked.map(({ infoType, value }) => {
      // Answered under another infoType than asked: id-it-rootCaKeyUpdate (RFC 9483 4.3.2).
      if (infoType === OID_IT_ROOT_CA_CERT) return { infoType: OID_IT_ROOT_CA_KEY_UPDATE, ...rootCaKeyUpdate(value, sources) };
      const answer = supported[infoType];
      return answer ? { infoType, value: answer() } : { infoType };
    }),
  };
}

/**
 * The RootCaKeyUpdateContent for a client holding `held` (RootCaCertValue; absent: it did not say).
 * No value when the client holds the current root: RFC 9483 4.3.2 leaves infoValue absent when there
 * is no update. A client several generations behind gets the link from its own root to the next one,
 * checks it against the root it trusts, and asks again with the new root: one step at a time, each
 * step verified with a key it already trusts.
 */
function rootCaKeyUpdate(held: Buffer | undefined, sources: GeneralMessageSources): { value?: Buffer } {
  const updates = sources.rootUpdates ?? [];
  const latest = updates[updates.length - 1];
  const current = latest?.newWithNew ?? sources.chainDer[sources.chainDer.length - 1];
  if (held === undefined) return latest ? { value: encodeRootCaKeyUpdateContent(latest) } : {};
  if (current?.equals(held)) return {};
  const update = updates.find((u) => u.oldWithOld.equals(held));
  if (!update) throw new CmpMessageError("the root certificate sent in rootCaCert is not one of this CA's roots (neither the current root nor one it replaced): there is no key update from it", 'badRequest');
  return { value: encodeRootCaKeyUpdateContent(update) };
}
