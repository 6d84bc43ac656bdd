import { Tag, type CborValue } from './cbor.js';
import { C509Error } from './errors.js';

/** Typed reads of decoded CBOR for the C509 -> DER direction; every error names the field. */
export function malformed(path: string, why: string): C509Error {
  return new C509Error('C509_MALFORMED', `${path}: ${why}`);
}

const kind = (v: unknown): string =>
  v === null ? 'null' : v === undefined ? 'undefined' : Buffer.isBuffer(v) ? 'a byte string' : Array.isArray(v) ? 'an array' : v instanceof Tag ? `tag ${v.tag}` : typeof v;

export function asInt(v: unknown, path: string, range: { min?: number; max?: number } = {}): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw malformed(path, `expected an integer, found ${typeof v === 'bigint' ? 'an integer too large for this field' : kind(v)}`);
  if ((range.min !== undefined && v < range.min) || (range.max !== undefined && v > range.max)) throw malformed(path, `${v} is out of range`);
  return v;
}

export function asBytes(v: unknown, path: string): Buffer {
  if (!Buffer.isBuffer(v)) throw malformed(path, `expected a byte string, found ${kind(v)}`);
  return v;
}

export function asText(v: unknown, path: string): string {
  if (typeof v !== 'string') throw malformed(path, `expected a text string, found ${kind(v)}`);
  return v;
}

export function asArray(v: unknown, path: string, length?: { min?: number; max?: number; even?: boolean }): unknown[] {
  if (!Array.isArray(v)) throw malformed(path, `expected an array, found ${kind(v)}`);
  if (length?.min !== undefined && v.length < length.min) throw malformed(path, `expected at least ${length.min} elements, found ${v.length}`);
  if (length?.max !== undefined && v.length > length.max) throw malformed(path, `expected at most ${length.max} elements, found ${v.length}`);
  if (length?.even && v.length % 2 !== 0) throw malformed(path, `expected pairs, found ${v.length} elements`);
  return v;
}

/** Pairs of a flattened CBOR array ([k1, v1, k2, v2, ...]). */
export function pairs(v: unknown, path: string, min = 1): [unknown, unknown][] {
  const arr = asArray(v, path, { min: min * 2, even: true });
  const out: [unknown, unknown][] = [];
  for (let i = 0; i < arr.length; i += 2) out.push([arr[i], arr[i + 1]]);
  return out;
}

export type { CborValue };
