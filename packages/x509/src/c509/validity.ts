import { derTime } from '../der.js';
import { unconvertible, type Element } from './der-walk.js';
import { asInt, malformed } from './values.js';

const NO_EXPIRY = '99991231235959Z'; // RFC 5280 4.1.2.5: C509 writes it as null
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59) / 1000;

/** UTCTime / GeneralizedTime (RFC 5280 4.1.2.5: seconds, Z) -> seconds since 1970; null for no expiry. */
export function encodeTime(el: Element, path: string, allowNoExpiry: boolean): number | null {
  const text = el.content.toString('latin1');
  if (allowNoExpiry && el.tag === 0x18 && text === NO_EXPIRY) return null;
  const m = el.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : el.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
  if (!m) throw unconvertible(path, `"${text.slice(0, 20)}" is not an RFC 5280 UTCTime or GeneralizedTime`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const year = el.tag === 0x17 ? (y! >= 50 ? 1900 + y! : 2000 + y!) : y!;
  if (s === 60) throw unconvertible(path, 'a leap second (23:59:60) cannot be expressed in POSIX time');
  const ms = Date.UTC(year, mo! - 1, d!, h!, mi!, s!);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== mo! - 1 || back.getUTCDate() !== d! || back.getUTCHours() !== h! || back.getUTCMinutes() !== mi!) {
    throw unconvertible(path, `"${text}" is not a valid date`);
  }
  if (ms < 0) throw unconvertible(path, 'a time before 1970 cannot be expressed (C509 times are unsigned)');
  return ms / 1000;
}

export function decodeTime(v: unknown, path: string, allowNoExpiry: boolean): Buffer {
  if (v === null && allowNoExpiry) return Buffer.concat([Buffer.from([0x18, NO_EXPIRY.length]), Buffer.from(NO_EXPIRY, 'latin1')]);
  if (v === null) throw malformed(path, 'only notAfter may be null');
  return derTime(new Date(asInt(v, path, { min: 0, max: LATEST }) * 1000));
}
