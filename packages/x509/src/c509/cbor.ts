import { Decoder, Encoder, Tag } from 'cbor-x';
import { C509Error } from './errors.js';

/**
 * CBOR through cbor-x, held to what C509 needs: deterministic encoding (RFC 8949 4.2.1, which the
 * draft requires throughout), byte strings untagged, and integers past 32 bits as integers. cbor-x
 * writes a JavaScript number above 2^32 as a float64, so such numbers travel as bigint here.
 */
const encoder = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: false, variableMapSize: true, pack: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false });

export { Tag };

/** A CBOR item as this codec builds it. */
export type CborValue = number | bigint | string | Buffer | null | undefined | boolean | Tag | CborValue[];

/** cbor-x writes a number past 32 bits as float64 and every bigint in 8 bytes: pick per magnitude. */
function normaliseInteger(value: number | bigint): number | bigint {
  const big = BigInt(value);
  return big <= 0xffffffffn && big >= -0x100000000n ? Number(big) : big;
}

function normalise(value: CborValue): unknown {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`internal: ${value} is not an integer`);
    return normaliseInteger(value);
  }
  if (typeof value === 'bigint') return normaliseInteger(value);
  if (Array.isArray(value)) return value.map(normalise);
  if (value instanceof Tag) return new Tag(normalise(value.value as CborValue), value.tag);
  return value;
}

export function encodeItem(value: CborValue): Buffer {
  return Buffer.from(encoder.encode(normalise(value)));
}

/** A CBOR sequence (RFC 8742): the items one after another, no array header. */
export function encodeSequence(values: readonly CborValue[]): Buffer {
  return Buffer.concat(values.map(encodeItem));
}

/**
 * Decodes exactly one item and insists that it was deterministically encoded: re-encoding what was
 * read must give the same bytes. That one check refuses non-shortest integers and lengths, floats,
 * indefinite lengths, maps and unknown tags' odd forms, each of which would break byte-exact round trips.
 */
export function decodeStrict(bytes: Uint8Array, what: string): unknown {
  let value: unknown;
  try {
    value = decoder.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new C509Error('C509_MALFORMED', `${what}: not a single well-formed CBOR item: ${(err as Error).message}`);
  }
  let again: Buffer;
  try {
    again = encodeItem(value as CborValue);
  } catch {
    throw new C509Error('C509_MALFORMED', `${what}: holds a CBOR type C509 does not use (map, float or unknown simple value)`);
  }
  if (!again.equals(Buffer.from(bytes))) throw new C509Error('C509_MALFORMED', `${what}: not deterministically encoded CBOR (RFC 8949 4.2.1): shortest lengths and integers are required`);
  return value;
}
