import { derTlv } from '../der.js';
import type { CborValue } from './cbor.js';
import { children, derSmallInteger, derUnsignedInteger, expectTag, parseElement, seq, smallInteger, unconvertible, unsignedIntegerBytes, type Element } from './der-walk.js';
import { C509Error, NotExpressible } from './errors.js';
import { GENERAL_NAME_CODES, decodeGeneralName, decodeGeneralNameList, encodeGeneralName, encodeGeneralNames } from './general-names.js';
import { decodeName, encodeName } from './name.js';
import { CERTIFICATE_POLICIES, CPS_QUALIFIER, EXTENDED_KEY_USAGES, EXTENSIONS, INFORMATION_ACCESS, POLICY_QUALIFIERS, USER_NOTICE_QUALIFIER, type CodeTable } from './registry.js';
import { asArray, asBytes, asInt, asText, malformed, pairs } from './values.js';
import { need, type ExtensionCodec } from './codec.js';
import { AS_IDENTIFIERS_CODEC, IP_ADDR_BLOCKS_CODEC } from './resource-extensions.js';

/**
 * Extensions (draft, "Encoding of Extensions"). A codec turns the DER inside extnValue into its
 * specific CBOR form and back. Encoders throw NotExpressible for values the specific form does not
 * cover; such an extension then takes the (~oid, bytes) form, as the draft requires.
 */
/** int from a registry, else the OID's content octets. */
const codeOrOid = (table: CodeTable, oid: Element): CborValue => {
  need(oid.tag === 0x06, 'expected an OBJECT IDENTIFIER');
  return table.code(oid.content.toString('hex')) ?? oid.content;
};
const oidFromCode = (table: CodeTable, v: unknown, path: string): Buffer => {
  if (Buffer.isBuffer(v)) return derTlv(0x06, v);
  const code = asInt(v, path);
  const oid = table.key(code);
  if (oid === undefined) throw malformed(path, `unknown ${table.name} ${code}`);
  return derTlv(0x06, Buffer.from(oid, 'hex'));
};

/**
 * Named bit lists (RFC 5280 KeyUsage, ReasonFlags): bit i has value 2^i; DER drops trailing zero bits.
 * The draft calls reasons "an unsigned integer in network byte order", but its examples (tv03 x448:
 * reasons 3 = unspecified|keyCompromise as 06 C0) number the bits like keyUsage.
 */
function bitsToNumber(bits: Element): number {
  need(bits.content.length >= 1 && bits.content.length <= 3, 'named bit list too long');
  let value = 0;
  const bytes = bits.content.subarray(1);
  for (let i = 0; i < bytes.length * 8; i++) if (bytes[i >> 3]! & (0x80 >> (i & 7))) value += 2 ** i;
  return value;
}
function numberToBits(tag: number, value: number): Buffer {
  if (value === 0) return derTlv(tag, Buffer.from([0]));
  const length = Math.floor(Math.log2(value)) + 1;
  const bytes = Buffer.alloc(Math.ceil(length / 8));
  for (let i = 0; i < length; i++) if (Math.floor(value / 2 ** i) % 2) bytes[i >> 3]! |= 0x80 >> (i & 7);
  return derTlv(tag, Buffer.concat([Buffer.from([bytes.length * 8 - length]), bytes]));
}

const generalNamesCodec: ExtensionCodec = {
  encode(value, path) {
    const flat = encodeGeneralNames(expectTag(value, 0x30, path), path);
    return flat.length === 2 && flat[0] === GENERAL_NAME_CODES.dNSName ? flat[1]! : flat;
  },
  decode(v, path) {
    if (typeof v === 'string') return seq(decodeGeneralName(GENERAL_NAME_CODES.dNSName, v, path));
    return seq(...decodeGeneralNameList(v, path));
  },
};

const distributionPointsCodec: ExtensionCodec = {
  encode(value, path) {
    const points = children(expectTag(value, 0x30, path), path).map((dp) => {
      need(dp.tag === 0x30, 'DistributionPoint');
      const [name, ...rest] = children(dp, path);
      need(name?.tag === 0xa0, 'a distribution point without distributionPoint');
      const [fullName, extra] = children(name!, path);
      need(fullName?.tag === 0xa0 && !extra, 'nameRelativeToCRLIssuer');
      const uris = children(fullName!, path).map((gn) => {
        need(gn.tag === 0x86, 'a fullName other than uniformResourceIdentifier');
        return encodeGeneralName(gn, path)[1];
      });
      let reasons: CborValue = null;
      let issuer: CborValue = null;
      for (const part of rest) {
        if (part.tag === 0x81 && reasons === null && issuer === null) reasons = bitsToNumber(part);
        else if (part.tag === 0xa2 && issuer === null) {
          const names = children(part, path);
          need(names.length === 1 && names[0]!.tag === 0xa4, 'a cRLIssuer other than one directoryName');
          issuer = encodeName(children(names[0]!, path)[0]!, `${path} cRLIssuer`);
        } else throw new NotExpressible('DistributionPoint field order');
      }
      return [uris.length === 1 ? uris[0]! : uris, reasons, issuer] as CborValue[];
    });
    const [only] = points;
    return points.length === 1 && typeof only![0] === 'string' && only![1] === null && only![2] === null ? only![0] : points;
  },
  decode(v, path) {
    const points = typeof v === 'string' ? [[v, null, null]] : asArray(v, path, { min: 1 });
    return seq(...points.map((p, i) => {
      const dpPath = `${path} point ${i + 1}`;
      const [fullName, reasons, issuer] = asArray(p, dpPath, { min: 3, max: 3 });
      const uris = typeof fullName === 'string' ? [fullName] : asArray(fullName, dpPath, { min: 2 }).map((u) => asText(u, dpPath));
      const parts = [derTlv(0xa0, derTlv(0xa0, Buffer.concat(uris.map((u) => decodeGeneralName(GENERAL_NAME_CODES.uri, u, dpPath)))))];
      if (reasons !== null) parts.push(numberToBits(0x81, asInt(reasons, `${dpPath} reasons`, { min: 1, max: 0x1ff })));
      if (issuer !== null) parts.push(derTlv(0xa2, derTlv(0xa4, decodeName(issuer, `${dpPath} cRLIssuer`))));
      return seq(...parts);
    }));
  },
};

const accessCodec: ExtensionCodec = {
  encode(value, path) {
    return children(expectTag(value, 0x30, path), path).flatMap((ad) => {
      const [method, location, extra] = children(ad, path);
      need(method && location?.tag === 0x86 && !extra, 'an access location other than a URI');
      return [codeOrOid(INFORMATION_ACCESS, method!), encodeGeneralName(location!, path)[1]];
    });
  },
  decode(v, path) {
    return seq(...pairs(v, path).map(([method, uri], i) => seq(oidFromCode(INFORMATION_ACCESS, method, `${path} method ${i + 1}`), decodeGeneralName(GENERAL_NAME_CODES.uri, uri, path))));
  },
};

/** iPAddress in nameConstraints: address and prefix length instead of address and mask (RFC 9549 2.2). */
function ipSubtreeToPrefix(gn: Element): Buffer {
  const half = gn.content.length / 2;
  need(half === 4 || half === 16, 'iPAddress constraint length');
  const mask = gn.content.subarray(half);
  let prefix = 0;
  while (prefix < half * 8 && mask[prefix >> 3]! & (0x80 >> (prefix & 7))) prefix++;
  return Buffer.concat([gn.content.subarray(0, half), Buffer.from([prefix])]);
}
function prefixToIpSubtree(bytes: Buffer, path: string): Buffer {
  const half = bytes.length - 1;
  if (half !== 4 && half !== 16) throw malformed(path, 'an iPAddress constraint is 5 or 17 bytes');
  const prefix = bytes[half]!;
  if (prefix > half * 8) throw malformed(path, `prefix length ${prefix} is too long`);
  const mask = Buffer.alloc(half);
  for (let i = 0; i < prefix; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  return derTlv(0x87, Buffer.concat([bytes.subarray(0, half), mask]));
}

const nameConstraintsCodec: ExtensionCodec = {
  encode(value, path) {
    const out: CborValue[] = [null, null];
    for (const part of children(expectTag(value, 0x30, path), path)) {
      const index = part.tag === 0xa0 ? 0 : part.tag === 0xa1 ? 1 : -1;
      need(index >= 0 && out[index] === null, 'nameConstraints field');
      out[index] = children(part, path).flatMap((subtree) => {
        const [base, extra] = children(subtree, path);
        need(base && !extra, 'minimum or maximum in a GeneralSubtree');
        return base!.tag === 0x87 ? [GENERAL_NAME_CODES.iPAddress, ipSubtreeToPrefix(base!)] : encodeGeneralName(base!, path);
      });
    }
    return out;
  },
  decode(v, path) {
    const [permitted, excluded] = asArray(v, path, { min: 2, max: 2 });
    const subtrees = (tag: number, list: unknown, what: string) =>
      list === null ? [] : [derTlv(tag, Buffer.concat(pairs(list, `${path} ${what}`).map(([type, name]) =>
        seq(type === GENERAL_NAME_CODES.iPAddress ? prefixToIpSubtree(asBytes(name, path), path) : decodeGeneralName(type, name, `${path} ${what}`)))))];
    return seq(...subtrees(0xa0, permitted, 'permitted'), ...subtrees(0xa1, excluded, 'excluded'));
  },
};

const CODECS: ReadonlyMap<number, ExtensionCodec> = new Map<number, ExtensionCodec>([
  [1, { encode: (v, p) => expectTag(v, 0x04, p).content, decode: (v, p) => derTlv(0x04, asBytes(v, p)) }],
  [2, { encode: (v, p) => bitsToNumber(expectTag(v, 0x03, p)), decode: (v, p) => numberToBits(0x03, asInt(v, p, { min: 0, max: 0x1ff })) }],
  [3, generalNamesCodec],
  [25, generalNamesCodec],
  [4, {
    encode(value, path) {
      const [ca, pathLen, extra] = children(expectTag(value, 0x30, path), path);
      if (!ca) return -2;
      need(ca.der.equals(Buffer.from('0101ff', 'hex')) && !extra, 'basicConstraints with cA FALSE and a path length');
      return pathLen ? smallInteger(pathLen, path) : -1;
    },
    decode(v, path) {
      const n = asInt(v, path, { min: -2 });
      return n === -2 ? seq() : n === -1 ? seq(Buffer.from('0101ff', 'hex')) : seq(Buffer.from('0101ff', 'hex'), derSmallInteger(n));
    },
  }],
  [5, distributionPointsCodec],
  [29, distributionPointsCodec],
  [6, {
    encode(value, path) {
      return children(expectTag(value, 0x30, path), path).flatMap((info) => {
        const [policy, qualifiers, extra] = children(info, path);
        need(policy && !extra, 'PolicyInformation');
        const list = qualifiers ? children(qualifiers, path).flatMap((q) => {
          const [id, qualifier, more] = children(q, path);
          need(id && qualifier && !more, 'PolicyQualifierInfo');
          const code = codeOrOid(POLICY_QUALIFIERS, id!);
          if (code === CPS_QUALIFIER && qualifier!.tag === 0x16) return [code, qualifier!.content.toString('latin1')];
          if (code === USER_NOTICE_QUALIFIER && qualifier!.tag === 0x30) {
            const [text, other] = children(qualifier!, path);
            need(text?.tag === 0x0c && !other, 'a userNotice with noticeRef or a non-UTF8String explicitText');
            return [code, text!.content.toString('utf8')];
          }
          throw new NotExpressible('policy qualifier');
        }) : [];
        return [codeOrOid(CERTIFICATE_POLICIES, policy!), list];
      });
    },
    decode(v, path) {
      return seq(...pairs(v, path).map(([policy, qualifiers], i) => {
        const pPath = `${path} policy ${i + 1}`;
        const qs = pairs(qualifiers, pPath, 0).map(([id, text]) => {
          const idDer = oidFromCode(POLICY_QUALIFIERS, id, pPath);
          if (id === CPS_QUALIFIER) return seq(idDer, derTlv(0x16, Buffer.from(asText(text, pPath), 'latin1')));
          if (id === USER_NOTICE_QUALIFIER) return seq(idDer, seq(derTlv(0x0c, Buffer.from(asText(text, pPath), 'utf8'))));
          throw malformed(pPath, 'only the CPS and userNotice qualifiers have a text form');
        });
        return seq(oidFromCode(CERTIFICATE_POLICIES, policy, pPath), ...(qs.length ? [seq(...qs)] : []));
      }));
    },
  }],
  [7, {
    encode(value, path) {
      const parts = children(expectTag(value, 0x30, path), path);
      if (parts.length === 1 && parts[0]!.tag === 0x80) return parts[0]!.content;
      need(parts.length === 3 && parts[0]!.tag === 0x80 && parts[1]!.tag === 0xa1 && parts[2]!.tag === 0x82, 'authorityKeyIdentifier without keyIdentifier, or with only some fields');
      return [parts[0]!.content, encodeGeneralNames(parts[1]!, path), unsignedIntegerBytes({ ...parts[2]!, tag: 0x02 }, path)];
    },
    decode(v, path) {
      if (Buffer.isBuffer(v)) return seq(derTlv(0x80, v));
      const [keyId, issuer, serial] = asArray(v, path, { min: 3, max: 3 });
      const serialDer = parseElement(derUnsignedInteger(asBytes(serial, `${path} serial`)), path);
      return seq(derTlv(0x80, asBytes(keyId, `${path} keyIdentifier`)), derTlv(0xa1, Buffer.concat(decodeGeneralNameList(issuer, path))), derTlv(0x82, serialDer.content));
    },
  }],
  [8, {
    encode(value, path) {
      const ids = children(expectTag(value, 0x30, path), path).map((oid) => codeOrOid(EXTENDED_KEY_USAGES, oid));
      return ids.length === 1 ? ids[0]! : ids;
    },
    decode(v, path) {
      const ids = Array.isArray(v) ? asArray(v, path, { min: 2 }) : [v];
      return seq(...ids.map((id, i) => oidFromCode(EXTENDED_KEY_USAGES, id, `${path} purpose ${i + 1}`)));
    },
  }],
  [9, accessCodec],
  [31, accessCodec],
  [26, nameConstraintsCodec],
  [27, {
    encode: (value, path) => children(expectTag(value, 0x30, path), path).flatMap((m) => {
      const [from, to, extra] = children(m, path);
      need(from && to && !extra, 'PolicyMapping');
      return [codeOrOid(CERTIFICATE_POLICIES, from!), codeOrOid(CERTIFICATE_POLICIES, to!)];
    }),
    decode: (v, path) => seq(...pairs(v, path).map(([from, to]) => seq(oidFromCode(CERTIFICATE_POLICIES, from, path), oidFromCode(CERTIFICATE_POLICIES, to, path)))),
  }],
  [28, {
    encode(value, path) {
      const out: CborValue[] = [null, null];
      for (const part of children(expectTag(value, 0x30, path), path)) {
        const index = part.tag - 0x80;
        need((index === 0 || index === 1) && out[index] === null && (index === 0 || out[1] === null), 'policyConstraints field');
        out[index] = smallInteger({ ...part, tag: 0x02 }, path);
      }
      return out;
    },
    decode(v, path) {
      const [require, inhibit] = asArray(v, path, { min: 2, max: 2 });
      const field = (tag: number, n: unknown) => (n === null ? [] : [derTlv(tag, parseElement(derSmallInteger(asInt(n, path, { min: 0 })), path).content)]);
      return seq(...field(0x80, require), ...field(0x81, inhibit));
    },
  }],
  [30, { encode: (v, p) => smallInteger(v, p), decode: (v, p) => derSmallInteger(asInt(v, p, { min: 0 })) }],
  [32, IP_ADDR_BLOCKS_CODEC],
  [34, IP_ADDR_BLOCKS_CODEC],
  [33, AS_IDENTIFIERS_CODEC],
  [35, AS_IDENTIFIERS_CODEC],
  [36, { encode: (v) => (need(v.der.equals(Buffer.from('0500', 'hex')), 'ocsp-nocheck value'), null), decode: (v, p) => { if (v !== null) throw malformed(p, 'expected null'); return Buffer.from('0500', 'hex'); } }],
  [38, {
    encode: (v, p) => children(expectTag(v, 0x30, p), p).map((n) => smallInteger(n, p)),
    decode: (v, p) => seq(...asArray(v, p).map((n) => derSmallInteger(asInt(n, p, { min: 0, max: 0xffff })))),
  }],
]);

const extensionName = (oidHex: string): string => `extension ${oidHex}`;

function encodeOne(ext: Element, path: string): [CborValue, CborValue] {
  const [id, second, third, extra] = children(expectTag(ext, 0x30, path), path);
  if (!id || id.tag !== 0x06 || !second || extra) throw unconvertible(path, 'not an Extension');
  let critical = false;
  let valueEl = second;
  if (third) {
    if (!second.der.equals(Buffer.from('0101ff', 'hex'))) throw unconvertible(path, 'critical must be absent or TRUE in DER');
    critical = true;
    valueEl = third;
  }
  expectTag(valueEl, 0x04, `${path} extnValue`);
  const oidHex = id.content.toString('hex');
  const code = EXTENSIONS.code(oidHex);
  const named = `${path} (${code !== undefined ? `C509 extension ${code}` : extensionName(oidHex)})`;
  if (code !== undefined) {
    const codec = CODECS.get(code);
    if (!codec) throw new C509Error('C509_UNSUPPORTED', `${named}: its C509 encoding is not implemented in fleetpki`);
    try {
      const value = codec.encode(parseElement(valueEl.content, named), named);
      if (codec.decode(value, named).equals(valueEl.content)) return [critical ? -code : code, value];
    } catch (err) {
      if (!(err instanceof NotExpressible) && !(err instanceof C509Error)) throw err;
    }
  }
  return [id.content, critical ? [valueEl.content] : valueEl.content];
}

/** The [3] extensions of a TBSCertificate (or an extensionRequest's Extensions) as C509 Extensions. */
export function encodeExtensions(extensions: Element | undefined, path: string): CborValue {
  if (!extensions) return [];
  const out = children(expectTag(extensions, 0x30, path), path).flatMap((ext, i) => encodeOne(ext, `${path} ${i + 1}`));
  // Only keyUsage: the array collapses to one int (draft, extensions); not for the value 0, whose sign is lost.
  if (out.length === 2 && Math.abs(out[0] as number) === 2 && typeof out[1] === 'number' && out[1] !== 0) return Math.sign(out[0] as number) * out[1];
  return out;
}

/** The Extensions SEQUENCE, or undefined for none (the [3] field is then absent). */
export function decodeExtensions(v: unknown, path: string): Buffer | undefined {
  if (typeof v === 'number') {
    asInt(v, path);
    v = [v < 0 ? -2 : 2, Math.abs(v)];
  }
  const list = asArray(v, path, { even: true });
  if (list.length === 0) return undefined;
  return seq(...pairs(list, path).map(([id, value], i) => {
    const extPath = `${path} ${i + 1}`;
    if (Buffer.isBuffer(id)) {
      const critical = Array.isArray(value);
      const inner = critical ? asBytes(asArray(value, extPath, { min: 1, max: 1 })[0], extPath) : asBytes(value, extPath);
      return seq(derTlv(0x06, id), ...(critical ? [Buffer.from('0101ff', 'hex')] : []), derTlv(0x04, inner));
    }
    const signed = asInt(id, `${extPath} id`);
    const code = Math.abs(signed);
    const oid = EXTENSIONS.key(code);
    if (oid === undefined || code === 0) throw malformed(extPath, `unknown extension id ${signed}`);
    const codec = CODECS.get(code);
    if (!codec) throw new C509Error('C509_UNSUPPORTED', `${extPath}: C509 extension ${code} is not implemented in fleetpki`);
    return seq(derTlv(0x06, Buffer.from(oid, 'hex')), ...(signed < 0 ? [Buffer.from('0101ff', 'hex')] : []), derTlv(0x04, codec.decode(value, `${extPath} (extension ${code})`)));
  }));
}
