import { FleetError, eui64ToBytes, isFleetError, parseEui64, parseKeyRole, type KeyRole } from '@fleetpki/core';
import { parseDevicePublicKey, readCsr } from '@fleetpki/x509';

/** One key of one device, as the batch pipeline stores it. */
export interface ManifestKey {
  readonly lineNo: number;
  readonly eui64: Buffer;
  readonly deviceType: string;
  readonly keyRole: KeyRole;
  /** 91-byte P-256 SPKI, point on the curve. */
  readonly publicKey: Buffer;
  /** DER CSR, structurally valid; its signature is verified by the worker. Absent for raw public keys. */
  readonly csr: Buffer | null;
}

export interface LineError {
  readonly line: number;
  readonly code: string;
  readonly message: string;
}

export type ManifestFormat = 'ndjson' | 'csv';

const DEVICE_TYPE = /^[A-Za-z0-9._-]{1,64}$/;
const DEFAULT_DEVICE_TYPE = 'smart-meter';

function lineError(code: string, message: string): FleetError {
  return new FleetError(code, message, { httpStatus: 400 });
}

function parseKey(lineNo: number, eui64: Buffer, deviceType: string, role: unknown, csr: unknown, publicKey: unknown): ManifestKey {
  if (typeof role !== 'string') throw lineError('MANIFEST_FIELD_INVALID', '"role" must be a string');
  const keyRole = parseKeyRole(role);
  const hasCsr = typeof csr === 'string' && csr !== '';
  const hasKey = typeof publicKey === 'string' && publicKey !== '';
  if (hasCsr === hasKey) throw lineError('KEY_SOURCE_INVALID', `key ${keyRole}: give exactly one of "csr" or "publicKey"`);
  if (hasCsr) {
    const read = readCsr(csr);
    return { lineNo, eui64, deviceType, keyRole, publicKey: read.publicKey.spki, csr: read.der };
  }
  return { lineNo, eui64, deviceType, keyRole, publicKey: parseDevicePublicKey(publicKey as string).spki, csr: null };
}

function parseDeviceType(value: unknown): string {
  if (value === undefined || value === '') return DEFAULT_DEVICE_TYPE;
  if (typeof value !== 'string' || !DEVICE_TYPE.test(value)) throw lineError('MANIFEST_FIELD_INVALID', '"deviceType" must be 1-64 letters, digits, dot, dash or underscore');
  return value;
}

/** NDJSON: {"eui64": "...", "deviceType": "...", "keys": [{"role": "...", "csr" | "publicKey": "..."}]} */
export function parseNdjsonLine(lineNo: number, text: string): ManifestKey[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw lineError('MANIFEST_LINE_MALFORMED', `not a JSON object: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw lineError('MANIFEST_LINE_MALFORMED', 'not a JSON object');
  const record = value as Record<string, unknown>;
  for (const field of Object.keys(record)) {
    if (!['eui64', 'deviceType', 'keys'].includes(field)) throw lineError('MANIFEST_FIELD_INVALID', `unknown field "${field.slice(0, 40)}"`);
  }
  if (typeof record.eui64 !== 'string') throw lineError('MANIFEST_FIELD_INVALID', '"eui64" is missing or not a string');
  const eui64 = eui64ToBytes(parseEui64(record.eui64));
  const deviceType = parseDeviceType(record.deviceType);
  if (!Array.isArray(record.keys) || record.keys.length === 0 || record.keys.length > 2) throw lineError('MANIFEST_FIELD_INVALID', '"keys" must be an array of 1 or 2 keys');
  const keys = record.keys.map((k: unknown) => {
    if (typeof k !== 'object' || k === null) throw lineError('MANIFEST_FIELD_INVALID', 'each key must be an object');
    const key = k as Record<string, unknown>;
    return parseKey(lineNo, eui64, deviceType, key.role, key.csr, key.publicKey);
  });
  if (keys.length === 2 && keys[0]!.keyRole === keys[1]!.keyRole) throw lineError('DUPLICATE_KEY_ROLE', `key role ${keys[0]!.keyRole} appears twice`);
  return keys;
}

const CSV_COLUMNS = ['eui64', 'deviceType', 'keyRole', 'csr', 'publicKey'] as const;

/**
 * CSV: a header naming the columns eui64, deviceType, keyRole, csr, publicKey (any order, case-
 * insensitive; deviceType and one of csr/publicKey may be left out), then one key per row. Split by hand:
 * none of these fields can contain a comma, quote or newline, so a full RFC 4180 parser buys nothing;
 * a row with the wrong number of fields is refused.
 */
export class CsvManifestReader {
  private columns: Map<string, number> | undefined;

  parse(lineNo: number, text: string): ManifestKey[] {
    const fields = text.split(',').map((f) => f.trim().replace(/^"(.*)"$/, '$1'));
    if (!this.columns) {
      const columns = new Map<string, number>();
      fields.forEach((name, i) => {
        const known = CSV_COLUMNS.find((c) => c.toLowerCase() === name.toLowerCase());
        if (!known) throw lineError('MANIFEST_HEADER_INVALID', `unknown CSV column "${name.slice(0, 40)}"; expected ${CSV_COLUMNS.join(', ')}`);
        columns.set(known, i);
      });
      if (!columns.has('eui64') || !columns.has('keyRole') || (!columns.has('csr') && !columns.has('publicKey'))) {
        throw lineError('MANIFEST_HEADER_INVALID', 'the CSV header must name eui64, keyRole and csr or publicKey');
      }
      this.columns = columns;
      return [];
    }
    if (fields.length !== this.columns.size) throw lineError('MANIFEST_LINE_MALFORMED', `expected ${this.columns.size} fields, got ${fields.length}`);
    const get = (name: string) => {
      const i = this.columns!.get(name);
      return i === undefined ? undefined : fields[i];
    };
    const eui64 = eui64ToBytes(parseEui64(get('eui64') ?? ''));
    return [parseKey(lineNo, eui64, parseDeviceType(get('deviceType')), get('keyRole'), get('csr'), get('publicKey'))];
  }

  get sawHeader(): boolean {
    return this.columns !== undefined;
  }
}

/** Turns whatever a line parser threw into a report entry (FleetErrors keep their code). */
export function toLineError(line: number, err: unknown): LineError {
  if (isFleetError(err) && err.httpStatus < 500) return { line, code: err.code, message: err.message };
  throw err;
}
