import { derTlv } from '../der.js';
import { readTlv, type Tlv } from '../der-reader.js';
import { C509Error } from './errors.js';

/** Element views for the DER -> C509 direction, with the field path in every error. */
export interface Element {
  readonly tag: number;
  /** The whole TLV. */
  readonly der: Buffer;
  /** The content octets. */
  readonly content: Buffer;
}

function element(der: Buffer, tlv: Tlv): Element {
  return { tag: tlv.tag, der: der.subarray(tlv.start, tlv.end), content: der.subarray(tlv.contentStart, tlv.end) };
}

export function unconvertible(path: string, why: string): C509Error {
  return new C509Error('C509_UNCONVERTIBLE', `${path}: ${why}`);
}

/** Parses one DER element that must fill `der` exactly. */
export function parseElement(der: Buffer, path: string): Element {
  try {
    const tlv = readTlv(der, 0);
    if (tlv.end !== der.length) throw new Error(`${der.length - tlv.end} bytes after the element`);
    return element(der, tlv);
  } catch (err) {
    throw new C509Error('C509_MALFORMED', `${path}: not DER: ${(err as Error).message}`);
  }
}

/** The children of a constructed element, each checked to be well-formed DER. */
export function children(parent: Element, path: string): Element[] {
  const out: Element[] = [];
  let offset = 0;
  try {
    while (offset < parent.content.length) {
      const tlv = readTlv(parent.content, offset);
      out.push(element(parent.content, tlv));
      offset = tlv.end;
    }
  } catch (err) {
    throw new C509Error('C509_MALFORMED', `${path}: not DER: ${(err as Error).message}`);
  }
  return out;
}

export function expectTag(el: Element | undefined, tag: number, path: string): Element {
  if (!el) throw new C509Error('C509_MALFORMED', `${path}: missing`);
  if (el.tag !== tag) throw unconvertible(path, `expected DER tag 0x${tag.toString(16)}, found 0x${el.tag.toString(16)}`);
  return el;
}

/** BIT STRING content with zero unused bits (what C509 assumes for keys and signatures). */
export function octetAlignedBits(el: Element, path: string): Buffer {
  if (el.content.length === 0 || el.content[0] !== 0) throw unconvertible(path, 'a BIT STRING with unused bits cannot be expressed');
  return el.content.subarray(1);
}

/** Positive INTEGER content without the DER sign octet (~biguint); refuses negatives. */
export function unsignedIntegerBytes(el: Element, path: string): Buffer {
  if (el.tag !== 0x02) throw unconvertible(path, `expected an INTEGER, found tag 0x${el.tag.toString(16)}`);
  if (el.content.length === 0 || (el.content[0]! & 0x80) !== 0) throw unconvertible(path, 'a negative or empty INTEGER cannot be expressed');
  return el.content[0] === 0 && el.content.length > 1 ? el.content.subarray(1) : el.content[0] === 0 ? Buffer.alloc(0) : el.content;
}

/** INTEGER from ~biguint bytes: leading zeros dropped, the sign octet put back when the top bit is set. */
export function derUnsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  const magnitude = bytes.subarray(start);
  if (magnitude.length === 0) return derTlv(0x02, Buffer.from([0]));
  return derTlv(0x02, (magnitude[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude);
}

/** A small non-negative INTEGER's value. */
export function smallInteger(el: Element, path: string): number {
  const bytes = unsignedIntegerBytes(el, path);
  if (bytes.length > 6) throw unconvertible(path, 'integer too large');
  return bytes.length === 0 ? 0 : bytes.readUIntBE(0, bytes.length);
}

export function derSmallInteger(value: number): Buffer {
  if (value === 0) return derTlv(0x02, Buffer.from([0]));
  const hex = value.toString(16);
  return derUnsignedInteger(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
}

export const seq = (...parts: Buffer[]): Buffer => derTlv(0x30, Buffer.concat(parts));
