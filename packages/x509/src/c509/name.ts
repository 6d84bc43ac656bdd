import { derTlv } from '../der.js';
import { Tag, type CborValue } from './cbor.js';
import { children, expectTag, parseElement, seq, unconvertible, type Element } from './der-walk.js';
import { IA5_ONLY_ATTRIBUTES, RDN_ATTRIBUTES } from './registry.js';
import { asArray, asBytes, asInt, malformed, pairs } from './values.js';

const UTF8_STRING = 0x0c;
const PRINTABLE_STRING = 0x13;
const IA5_STRING = 0x16;
const COMMON_NAME = 1;
const MAC_TAG = 48; // RFC 9542 2.4

/** SpecialText (draft, issuer): lowercase hex as bytes, an EUI-64 as a tagged MAC address, else text. */
export function encodeSpecialText(text: string): CborValue {
  if (text.length >= 2 && text.length % 2 === 0 && /^[0-9a-f]+$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[0-9A-F]{2}(-[0-9A-F]{2}){7}$/.test(text)) {
    const bytes = Buffer.from(text.replaceAll('-', ''), 'hex');
    const eui48 = bytes[3] === 0xff && bytes[4] === 0xfe;
    return new Tag(eui48 ? Buffer.concat([bytes.subarray(0, 3), bytes.subarray(5)]) : bytes, MAC_TAG);
  }
  return text;
}

export function decodeSpecialText(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) {
    if (v.length === 0) throw malformed(path, 'an empty byte string is not a SpecialText');
    return v.toString('hex');
  }
  if (v instanceof Tag && v.tag === MAC_TAG) {
    const mac = asBytes(v.value, `${path} (tag 48)`);
    if (mac.length !== 6 && mac.length !== 8) throw malformed(path, `a MAC address is 6 or 8 bytes, found ${mac.length}`);
    const eui64 = mac.length === 8 ? mac : Buffer.concat([mac.subarray(0, 3), Buffer.from([0xff, 0xfe]), mac.subarray(3)]);
    return [...eui64].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join('-');
  }
  throw malformed(path, 'expected text, bytes or a tag 48 MAC address');
}

function encodeAttribute(atv: Element, path: string): [CborValue, CborValue] {
  const [type, value, extra] = children(atv, path);
  if (!type || type.tag !== 0x06 || !value || extra) throw unconvertible(path, 'not an AttributeTypeAndValue');
  const code = RDN_ATTRIBUTES.code(type.content.toString('hex'));
  if (code !== undefined) {
    const ia5Only = IA5_ONLY_ATTRIBUTES.has(code);
    const stringType = ia5Only ? IA5_STRING : value.tag === PRINTABLE_STRING ? PRINTABLE_STRING : UTF8_STRING;
    if (value.tag === stringType) {
      const text = value.content.toString('utf8');
      const candidate: [CborValue, CborValue] = [stringType === PRINTABLE_STRING ? -code : code, encodeSpecialText(text)];
      // Only when the value comes back byte for byte (valid UTF-8, PrintableString's alphabet).
      if (decodeAttribute(candidate[0], candidate[1], path).equals(atv.der)) return candidate;
    }
  }
  // (~oid, bytes): the attribute's DER value as it stands (teletexString, an IA5String CN, unknown OIDs).
  return [type.content, value.der];
}

function decodeAttribute(type: unknown, value: unknown, path: string): Buffer {
  if (Buffer.isBuffer(type)) return seq(derTlv(0x06, type), parseElement(asBytes(value, path), path).der);
  const signed = asInt(type, `${path} type`);
  const code = Math.abs(signed);
  const oid = RDN_ATTRIBUTES.key(code);
  if (oid === undefined) throw malformed(path, `unknown RDN attribute ${code}`);
  const ia5Only = IA5_ONLY_ATTRIBUTES.has(code);
  if (ia5Only && signed < 0) throw malformed(path, `attribute ${code} is always an IA5String; a negative type is invalid`);
  const stringTag = ia5Only ? IA5_STRING : signed < 0 ? PRINTABLE_STRING : UTF8_STRING;
  return seq(derTlv(0x06, Buffer.from(oid, 'hex')), derTlv(stringTag, Buffer.from(decodeSpecialText(value, path), 'utf8')));
}

/** Name (draft, issuer): an array of (type, value) pairs, or one SpecialText for a lone UTF-8 CN. */
export function encodeName(name: Element, path: string): CborValue {
  expectTag(name, 0x30, path);
  const out: CborValue[] = [];
  for (const [i, rdn] of children(name, path).entries()) {
    const rdnPath = `${path} RDN ${i + 1}`;
    expectTag(rdn, 0x31, rdnPath);
    const atvs = children(rdn, rdnPath);
    if (atvs.length !== 1) throw unconvertible(rdnPath, `a RelativeDistinguishedName with ${atvs.length} attributes is not supported by C509`);
    out.push(...encodeAttribute(atvs[0]!, rdnPath));
  }
  if (out.length === 2 && out[0] === COMMON_NAME) return out[1]!;
  return out;
}

export function decodeName(v: unknown, path: string): Buffer {
  const list = Array.isArray(v) ? v : [COMMON_NAME, v];
  if (Array.isArray(v) && v.length === 0) return seq();
  asArray(list, path, { even: true });
  const rdns = pairs(list, path).map(([type, value], i) => derTlv(0x31, decodeAttribute(type, value, `${path} RDN ${i + 1}`)));
  return seq(...rdns);
}
