/**
 * A strict DER walker (X.690 8.1, 10.1): single-byte tags, definite minimal lengths, bounds checked.
 * Hand-written because parsing a CSR with pkijs costs ~200 us and a factory batch carries millions;
 * this reads one in a few microseconds. It locates elements; it does not interpret them.
 */
export interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the element. */
  readonly end: number;
}

export class DerError extends Error {}

export function readTlv(der: Uint8Array, offset: number, limit = der.length): Tlv {
  if (offset + 2 > limit) throw new DerError(`truncated DER at byte ${offset}`);
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte tag at byte ${offset} is not expected here`);
  let length = der[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerError(`indefinite length at byte ${offset} (BER, not DER)`);
    if (count > 3) throw new DerError(`length of ${count} bytes at byte ${offset} is too large`);
    if (contentStart + count > limit) throw new DerError(`truncated length at byte ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = (length << 8) | der[contentStart + i]!;
    if (der[contentStart] === 0 || length < 0x80) throw new DerError(`non-minimal length at byte ${offset} (not DER)`);
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError(`element at byte ${offset} claims ${length} bytes but only ${limit - contentStart} remain`);
  return { tag, start: offset, contentStart, end };
}

export function expectTlv(der: Uint8Array, offset: number, tag: number, what: string, limit = der.length): Tlv {
  const tlv = readTlv(der, offset, limit);
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)} at byte ${offset}, found 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The elements inside a constructed element, in order (each bounds-checked against its parent). */
export function childrenOf(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const tlv = readTlv(der, at, parent.end);
    out.push(tlv);
    at = tlv.end;
  }
  return out;
}
