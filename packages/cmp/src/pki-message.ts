import { DerError, childrenOf, derLength, expectTlv, readTlv, type Tlv } from '@fleetpki/x509';
import { BODY_TYPES, CmpMessageError, type AlgorithmId, type CertReqMsg, type CertTemplate, type PkiBody, type PkiHeader, type PkiMessage } from './message-types.js';

export * from './message-types.js';

/**
 * PKIMessage (RFC 9810 / RFC 4210 5.1, profiled by RFC 9483), read with the strict DER walker of
 * @fleetpki/x509. Hand-written: no maintained TypeScript CMP library exists, and a request from the
 * network is read the way CSRs are here: bounds-checked, DER only, every element located by its bytes,
 * so the protected part is verified over exactly the bytes that were sent.
 */

/** Requests are small; anything bigger is not a device enrolling. */
export const MAX_PKI_MESSAGE_BYTES = 64 * 1024;

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OCTET_STRING = 0x04;
const BIT_STRING = 0x03;
const OID = 0x06;
const NULL = 0x05;
const GENERALIZED_TIME = 0x18;
const ctx = (n: number, constructed = true) => (constructed ? 0xa0 : 0x80) | n;

const children = childrenOf;

const bytes = (der: Buffer, t: Tlv) => der.subarray(t.start, t.end);
const content = (der: Buffer, t: Tlv) => der.subarray(t.contentStart, t.end);

function integer(der: Buffer, t: Tlv, what: string): number {
  if (t.tag !== INTEGER) throw new DerError(`${what}: not an INTEGER`);
  const v = content(der, t);
  if (v.length === 0 || v.length > 6) throw new DerError(`${what}: an INTEGER of ${v.length} bytes`);
  return v.readIntBE(0, v.length);
}

/** OBJECT IDENTIFIER contents as dotted text (X.690 8.19). */
export function oidText(value: Uint8Array): string {
  if (value.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const b = value[i]!;
    if (n === 0 && b === 0x80) throw new DerError('non-minimal OBJECT IDENTIFIER arc');
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OBJECT IDENTIFIER arc too large');
    if (!(b & 0x80)) {
      arcs.push(n);
      n = 0;
    } else if (i === value.length - 1) throw new DerError('truncated OBJECT IDENTIFIER');
  }
  const first = arcs.shift()!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

function algorithm(der: Buffer, t: Tlv, what: string): AlgorithmId {
  if (t.tag !== SEQUENCE) throw new DerError(`${what}: not an AlgorithmIdentifier`);
  const [oid, params] = children(der, t);
  if (!oid || oid.tag !== OID) throw new DerError(`${what}: no algorithm OID`);
  return { oid: oidText(content(der, oid)), ...(params ? { parameters: Buffer.from(bytes(der, params)) } : {}) };
}

/** An IMPLICIT [n] element re-tagged as the SEQUENCE it stands for. */
function asSequence(der: Buffer, t: Tlv): Buffer {
  const out = Buffer.from(bytes(der, t));
  out[0] = SEQUENCE;
  return out;
}

function generalizedTime(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(text);
  if (!m) throw new DerError(`messageTime "${text.slice(0, 30)}" is not a GeneralizedTime in UTC`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

function header(der: Buffer, t: Tlv): PkiHeader {
  if (t.tag !== SEQUENCE) throw new DerError('PKIHeader: not a SEQUENCE');
  const [pvno, sender, recipient, ...rest] = children(der, t);
  if (!pvno || !sender || !recipient) throw new DerError('PKIHeader: pvno, sender and recipient are required');
  const out: { -readonly [K in keyof PkiHeader]?: PkiHeader[K] } = { pvno: integer(der, pvno, 'pvno'), sender: Buffer.from(bytes(der, sender)), recipient: Buffer.from(bytes(der, recipient)), generalInfo: [] };
  let last = -1;
  for (const field of rest) {
    const n = field.tag & 0x1f;
    if ((field.tag & 0xe0) !== 0xa0 || n > 8 || n <= last) throw new DerError(`PKIHeader: unexpected field tag 0x${field.tag.toString(16)}`);
    last = n;
    const [inner] = children(der, field);
    if (!inner) throw new DerError(`PKIHeader: empty field [${n}]`);
    const octets = () => {
      if (inner.tag !== OCTET_STRING) throw new DerError(`PKIHeader [${n}]: not an OCTET STRING`);
      return Buffer.from(content(der, inner));
    };
    if (n === 0) {
      if (inner.tag !== GENERALIZED_TIME) throw new DerError('messageTime: not a GeneralizedTime');
      out.messageTime = generalizedTime(content(der, inner).toString('latin1'));
    } else if (n === 1) out.protectionAlg = algorithm(der, inner, 'protectionAlg');
    else if (n === 2) out.senderKid = octets();
    else if (n === 3) octets();
    else if (n === 4) out.transactionId = octets();
    else if (n === 5) out.senderNonce = octets();
    else if (n === 6) out.recipNonce = octets();
    else if (n === 8) {
      if (inner.tag !== SEQUENCE) throw new DerError('generalInfo: not a SEQUENCE');
      out.generalInfo = children(der, inner).map((itav) => {
        const [type] = children(der, itav);
        if (!type || type.tag !== OID) throw new DerError('generalInfo: an InfoTypeAndValue without its OID');
        return oidText(content(der, type));
      });
    }
  }
  return out as PkiHeader;
}

function certTemplate(der: Buffer, t: Tlv): CertTemplate {
  const out: { -readonly [K in keyof CertTemplate]?: CertTemplate[K] } = {};
  for (const field of children(der, t)) {
    const n = field.tag & 0x1f;
    if (field.tag === ctx(1, false)) out.serialNumber = Buffer.from(content(der, field));
    else if (field.tag === ctx(3)) out.issuer = Buffer.from(bytes(der, children(der, field)[0] ?? field));
    else if (field.tag === ctx(5)) out.subject = Buffer.from(bytes(der, children(der, field)[0] ?? field));
    else if (field.tag === ctx(6)) out.publicKey = asSequence(der, field);
    else if (field.tag === ctx(9)) out.extensions = asSequence(der, field);
    else if ((field.tag & 0xc0) !== 0x80 || n > 9) throw new DerError(`CertTemplate: unexpected field tag 0x${field.tag.toString(16)}`);
  }
  return out;
}

function certReqMessages(der: Buffer, t: Tlv): CertReqMsg[] {
  if (t.tag !== SEQUENCE) throw new DerError('CertReqMessages: not a SEQUENCE');
  const msgs = children(der, t);
  if (msgs.length === 0) throw new DerError('CertReqMessages: empty');
  return msgs.map((msg) => {
    const [certReq, popo] = children(der, msg);
    if (!certReq || certReq.tag !== SEQUENCE) throw new DerError('CertReqMsg: no CertRequest');
    const [id, template] = children(der, certReq);
    if (!id || !template || template.tag !== SEQUENCE) throw new DerError('CertRequest: certReqId and certTemplate are required');
    let proof: CertReqMsg['popo'];
    if (popo) {
      if (popo.tag === ctx(0, false) || popo.tag === ctx(0)) proof = { kind: 'raVerified' };
      else if (popo.tag === ctx(1)) {
        const parts = children(der, popo);
        const hasInput = parts[0]?.tag === ctx(0);
        const [alg, sig] = hasInput ? parts.slice(1) : parts;
        if (!alg || !sig || sig.tag !== BIT_STRING) throw new DerError('POPOSigningKey: algorithm and signature are required');
        const bits = content(der, sig);
        if (bits[0] !== 0) throw new DerError('POPOSigningKey: the signature has unused bits');
        proof = { kind: 'signature', algorithm: algorithm(der, alg, 'POPOSigningKey'), signature: Buffer.from(bits.subarray(1)), hasPoposkInput: hasInput };
      } else proof = { kind: 'other', tag: popo.tag };
    }
    return { certReqId: integer(der, id, 'certReqId'), template: certTemplate(der, template), certRequestDer: Buffer.from(bytes(der, certReq)), ...(proof ? { popo: proof } : {}) };
  });
}

/** CRLReason in crlEntryDetails (Extensions; id-ce-cRLReasons 2.5.29.21, an ENUMERATED in an OCTET STRING). */
function crlReason(der: Buffer, extensions: Tlv): number | undefined {
  for (const ext of children(der, extensions)) {
    const [oid, ...rest] = children(der, ext);
    if (!oid || oid.tag !== OID || oidText(content(der, oid)) !== '2.5.29.21') continue;
    const value = rest[rest.length - 1];
    if (!value || value.tag !== OCTET_STRING) throw new DerError('crlEntryDetails: reasonCode without its value');
    const e = readTlv(der, value.contentStart, value.end);
    if (e.tag !== 0x0a || e.end - e.contentStart !== 1) throw new DerError('crlEntryDetails: reasonCode is not a one-byte ENUMERATED');
    return der[e.contentStart]!;
  }
  return undefined;
}

function body(der: Buffer, t: Tlv): PkiBody {
  if ((t.tag & 0xe0) !== 0xa0) throw new DerError('PKIBody: not a context-tagged CHOICE');
  const type = BODY_TYPES[t.tag & 0x1f];
  if (!type) throw new CmpMessageError(`PKIBody type [${t.tag & 0x1f}] is unknown`, 'badRequest');
  const [inner] = children(der, t);
  if (!inner) throw new DerError(`PKIBody ${type}: empty`);
  switch (type) {
    case 'ir':
    case 'cr':
    case 'kur':
      return { type, requests: certReqMessages(der, inner) };
    case 'p10cr':
      return { type, csr: Buffer.from(bytes(der, inner)) };
    case 'rr':
      return {
        type,
        revocations: children(der, inner).map((rd) => {
          const [template, details] = children(der, rd);
          if (!template || template.tag !== SEQUENCE) throw new DerError('RevDetails: certDetails is required');
          const reason = details ? crlReason(der, details) : undefined;
          return { template: certTemplate(der, template), ...(reason !== undefined ? { reason } : {}) };
        }),
      };
    case 'genm':
    case 'genp': {
      // Both SEQUENCE OF InfoTypeAndValue. A value is kept as sent: its syntax depends on the infoType,
      // and whoever answers (or reads) that infoType reads it (e.g. rootCaCert, RFC 9483 4.3.2).
      if (inner.tag !== SEQUENCE) throw new DerError(`${type}: not a SEQUENCE`);
      const infoValues = children(der, inner).map((itav) => {
        const [oid, value, extra] = itav.tag === SEQUENCE ? children(der, itav) : [];
        if (!oid || oid.tag !== OID) throw new DerError(`${type}: an InfoTypeAndValue without its OID`);
        if (extra) throw new DerError(`${type}: an InfoTypeAndValue with more than one value`);
        return { infoType: oidText(content(der, oid)), ...(value ? { value: Buffer.from(bytes(der, value)) } : {}) };
      });
      return { type, infoTypes: infoValues.map((v) => v.infoType), infoValues };
    }
    case 'certConf':
      return {
        type,
        statuses: children(der, inner).map((cs) => {
          const [hash, id, info] = children(der, cs);
          if (!hash || hash.tag !== OCTET_STRING || !id) throw new DerError('CertStatus: certHash and certReqId are required');
          const status = info ? children(der, info)[0] : undefined;
          return { certHash: Buffer.from(content(der, hash)), certReqId: integer(der, id, 'certReqId'), ...(status ? { status: integer(der, status, 'PKIStatus') } : {}) };
        }),
      };
    case 'pollReq':
      return { type, certReqIds: children(der, inner).map((pr) => integer(der, children(der, pr)[0] ?? pr, 'certReqId')) };
    case 'pkiconf':
      if (inner.tag !== NULL) throw new DerError('pkiconf: not NULL');
      return { type };
    case 'error': {
      const [info] = children(der, inner);
      if (!info || info.tag !== SEQUENCE) throw new DerError('ErrorMsgContent: pKIStatusInfo is required');
      const [status, ...rest] = children(der, info);
      if (!status) throw new DerError('PKIStatusInfo: status is required');
      const texts = rest.filter((f) => f.tag === SEQUENCE).flatMap((f) => children(der, f).map((t) => content(der, t).toString('utf8')));
      const bits = rest.find((f) => f.tag === BIT_STRING);
      const failInfo: number[] = [];
      if (bits) for (let i = 0; i < (bits.end - bits.contentStart - 1) * 8; i++) if (der[bits.contentStart + 1 + (i >> 3)]! & (0x80 >> (i & 7))) failInfo.push(i);
      return { type, status: integer(der, status, 'PKIStatus'), failInfo, texts };
    }
    default:
      return { type, der: Buffer.from(bytes(der, inner)) };
  }
}

/** Reads a PKIMessage; anything malformed is a CmpMessageError with failInfo badDataFormat. */
export function readPkiMessage(input: Uint8Array): PkiMessage {
  const der = Buffer.from(input);
  if (der.length > MAX_PKI_MESSAGE_BYTES) throw new CmpMessageError(`a PKIMessage of ${der.length} bytes; at most ${MAX_PKI_MESSAGE_BYTES} are accepted`, 'badDataFormat');
  try {
    const outer = expectTlv(der, 0, SEQUENCE, 'PKIMessage');
    if (outer.end !== der.length) throw new DerError('bytes after the PKIMessage');
    const [h, b, ...rest] = children(der, outer);
    if (!h || !b) throw new DerError('PKIMessage: header and body are required');
    let protection: Buffer | undefined;
    let extraCerts: Buffer[] = [];
    for (const field of rest) {
      if (field.tag === ctx(0) && protection === undefined && extraCerts.length === 0) {
        const bits = children(der, field)[0];
        if (!bits || bits.tag !== BIT_STRING || der[bits.contentStart] !== 0) throw new DerError('protection: not a BIT STRING without unused bits');
        protection = Buffer.from(der.subarray(bits.contentStart + 1, bits.end));
      } else if (field.tag === ctx(1) && extraCerts.length === 0) {
        const seq = children(der, field)[0];
        if (!seq || seq.tag !== SEQUENCE) throw new DerError('extraCerts: not a SEQUENCE');
        extraCerts = children(der, seq).map((c) => Buffer.from(bytes(der, c)));
        if (extraCerts.length === 0) throw new DerError('extraCerts: empty');
      } else throw new DerError(`PKIMessage: unexpected field tag 0x${field.tag.toString(16)}`);
    }
    const headerBytes = bytes(der, h);
    const bodyBytes = bytes(der, b);
    const inner = Buffer.concat([headerBytes, bodyBytes]);
    const protectedPart = Buffer.concat([Buffer.from([SEQUENCE]), derLength(inner.length), inner]);
    return { der, header: header(der, h), body: body(der, b), protectedPart, ...(protection ? { protection } : {}), extraCerts };
  } catch (err) {
    if (err instanceof DerError) throw new CmpMessageError(`not a PKIMessage this CA can read: ${err.message}`, 'badDataFormat');
    if (err instanceof RangeError) throw new CmpMessageError(`not a PKIMessage this CA can read: ${err.message}`, 'badDataFormat');
    throw err;
  }
}
