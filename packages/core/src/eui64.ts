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
