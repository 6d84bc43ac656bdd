import { FleetError } from './errors.js';

/** An IEEE EUI-64 device identifier, canonically 16 upper-case hex digits (no separators). */
export type Eui64 = string & { readonly __brand: 'Eui64' };

const EUI64_PATTERN = /^[0-9A-F]{16}$/;

/** Accepts `0011223344556677`, `00-11-22-33-44-55-66-77` or `00:11:...`, any case. */
export function parseEui64(input: string): Eui64 {
  const compact = input.trim().replace(/[-:]/g, '').toUpperCase();
  if (!EUI64_PATTERN.test(compact)) {
    throw new FleetError('EUI64_INVALID', `"${input.slice(0, 40)}" is not an EUI-64 (16 hex digits, optionally separated by - or :)`, { httpStatus: 400 });
  }
  return compact as Eui64;
}

export function eui64ToBytes(eui: Eui64): Buffer {
  return Buffer.from(eui, 'hex');
}

export function eui64FromBytes(bytes: Uint8Array): Eui64 {
  if (bytes.length !== 8) throw new FleetError('EUI64_INVALID', `EUI-64 must be 8 bytes, got ${bytes.length}`, { httpStatus: 400 });
  return Buffer.from(bytes).toString('hex').toUpperCase() as Eui64;
}

/** A block of device ids a manufacturer holds: every EUI-64 from `first` to `last`, both included. */
export interface Eui64Range {
  readonly first: Eui64;
  readonly last: Eui64;
}

/** `first`..`last` as given (each an EUI-64); refused when `last` comes before `first`. */
export function parseEui64Range(first: string, last: string): Eui64Range {
  const range = { first: parseEui64(first), last: parseEui64(last) };
  if (range.first > range.last) throw new FleetError('EUI64_RANGE_INVALID', `the range ends (${range.last}) before it starts (${range.first})`, { httpStatus: 400 });
  return range;
}

/**
 * Every EUI-64 that starts with `prefix`: 1-15 hex digits (separators - or : allowed), so an OUI (6
 * digits), an MA-M block (7) or an MA-S block (9) is given as IEEE assigns it.
 */
export function eui64PrefixRange(prefix: string): Eui64Range {
  const compact = prefix.trim().replace(/[-:]/g, '').toUpperCase();
  if (!/^[0-9A-F]{1,15}$/.test(compact)) throw new FleetError('EUI64_RANGE_INVALID', `"${prefix.slice(0, 40)}" is not an EUI-64 prefix (1-15 hex digits, e.g. an OUI 00-1B-C5)`, { httpStatus: 400 });
  return { first: compact.padEnd(16, '0') as Eui64, last: compact.padEnd(16, 'F') as Eui64 };
}
