import { derTlv } from '../der.js';
import type { CborValue } from './cbor.js';
import { children, expectTag, seq, smallInteger, derSmallInteger, type Element } from './der-walk.js';
import { need, type ExtensionCodec } from './codec.js';
import { asArray, asInt, malformed } from './values.js';

/** RFC 3779 / RFC 8360 resource extensions as the draft encodes them (IPAddrBlocks, AS Identifiers). */
const NULL = Buffer.from('0500', 'hex');

const asInteger = (v: unknown, path: string): bigint => {
  if (typeof v === 'bigint') return v;
  return BigInt(asInt(v, path));
};
const small = (n: bigint): CborValue => (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);

/** IPAddress BIT STRING -> unusedBits || value (the draft's byte sequence), and back. */
const addressBytes = (el: Element): Buffer => (need(el.tag === 0x03 && el.content.length >= 1, 'IPAddress'), el.content);
const addressDer = (bytes: Buffer): Buffer => derTlv(0x03, bytes);
/** IntIPAddressChoice: big-endian integer over (unusedBits + 1) || value, so it is never zero. */
const addressInt = (bytes: Buffer): bigint => BigInt(`0x${Buffer.concat([Buffer.from([bytes[0]! + 1]), bytes.subarray(1)]).toString('hex')}`);
function intAddress(n: bigint, path: string): Buffer {
  if (n <= 0n) throw malformed(path, 'an IPAddress integer must be positive');
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  if (bytes[0]! < 1 || bytes[0]! > 8) throw malformed(path, 'the first byte of an IPAddress integer is unusedBits + 1 (1-8)');
  bytes[0] = bytes[0]! - 1;
  return bytes;
}

export const IP_ADDR_BLOCKS_CODEC: ExtensionCodec = {
  encode(value, path) {
    return children(expectTag(value, 0x30, path), path).flatMap((family) => {
      const [afiEl, choice, extra] = children(family, path);
      need(afiEl?.tag === 0x04 && (afiEl.content.length === 2 || afiEl.content.length === 3) && choice && !extra, 'IPAddressFamily');
      const afi = afiEl!.content.readUInt16BE(0);
      const safi = afiEl!.content.length === 3 ? afiEl!.content[2]! : null;
      if (choice!.der.equals(NULL)) return [afi, safi, null];
      const entries = children(expectTag(choice, 0x30, path), path).map((entry) => {
        if (entry.tag === 0x03) return addressBytes(entry);
        const [min, max, more] = children(expectTag(entry, 0x30, path), path);
        need(min && max && !more, 'IPAddressRange');
        return [addressBytes(min!), addressBytes(max!)] as const;
      });
      const all = entries.flatMap((e) => (Buffer.isBuffer(e) ? [e] : [...e]));
      if (all.some((b) => b.length > 8)) return [afi, safi, entries.map((e) => (Buffer.isBuffer(e) ? e : [e[0], e[1]])) as CborValue[]];
      let previous = 0n;
      const delta = (b: Buffer): CborValue => {
        const n = addressInt(b);
        const d = n - previous;
        previous = n;
        return small(d);
      };
      return [afi, safi, entries.map((e) => (Buffer.isBuffer(e) ? delta(e) : [delta(e[0]), delta(e[1])])) as CborValue[]];
    });
  },
  decode(v, path) {
    const list = asArray(v, path, { min: 3 });
    if (list.length % 3 !== 0) throw malformed(path, 'IPAddrBlocks is triples of (AFI, SAFI, addresses)');
    const families: Buffer[] = [];
    for (let i = 0; i < list.length; i += 3) {
      const fPath = `${path} family ${i / 3 + 1}`;
      const afi = asInt(list[i], `${fPath} AFI`, { min: 0, max: 0xffff });
      const safi = list[i + 1] === null ? null : asInt(list[i + 1], `${fPath} SAFI`, { min: 0, max: 0xff });
      const afiBytes = Buffer.from([afi >> 8, afi & 0xff, ...(safi === null ? [] : [safi])]);
      const choice = list[i + 2];
      if (choice === null) {
        families.push(seq(derTlv(0x04, afiBytes), NULL));
        continue;
      }
      const entries = asArray(choice, fPath, { min: 1 });
      let previous = 0n;
      const address = (x: unknown): Buffer => {
        if (Buffer.isBuffer(x)) return addressDer(x);
        previous += asInteger(x, fPath);
        return addressDer(intAddress(previous, fPath));
      };
      const ders = entries.map((e) => {
        if (!Array.isArray(e)) return address(e);
        const [min, max] = asArray(e, fPath, { min: 2, max: 2 });
        return seq(address(min), address(max));
      });
      families.push(seq(derTlv(0x04, afiBytes), seq(...ders)));
    }
    return seq(...families);
  },
};

/** ASIdentifiers without rdi: [+ ASIdOrRange] (deltas from the previous ASId) or null for inherit. */
export const AS_IDENTIFIERS_CODEC: ExtensionCodec = {
  encode(value, path) {
    const parts = children(expectTag(value, 0x30, path), path);
    need(parts.length === 1 && parts[0]!.tag === 0xa0, 'ASIdentifiers with rdi');
    const [choice, extra] = children(parts[0]!, path);
    need(choice && !extra, 'ASIdentifierChoice');
    if (choice!.der.equals(NULL)) return null;
    let previous = 0;
    const delta = (el: Element) => {
      const n = smallInteger(el, path);
      const d = n - previous;
      previous = n;
      return d;
    };
    return children(expectTag(choice, 0x30, path), path).map((entry) => {
      if (entry.tag === 0x02) return delta(entry);
      const [min, max, more] = children(expectTag(entry, 0x30, path), path);
      need(min && max && !more, 'ASRange');
      return [delta(min!), delta(max!)];
    });
  },
  decode(v, path) {
    if (v === null) return seq(derTlv(0xa0, NULL));
    let previous = 0;
    const id = (x: unknown) => {
      previous += asInt(x, path);
      if (previous < 0) throw malformed(path, 'AS numbers are non-negative');
      return derSmallInteger(previous);
    };
    const entries = asArray(v, path, { min: 1 }).map((e) => (Array.isArray(e) ? seq(...asArray(e, path, { min: 2, max: 2 }).map(id)) : id(e)));
    return seq(derTlv(0xa0, seq(...entries)));
  },
};

