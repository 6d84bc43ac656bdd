import { FleetError, eui64ToBytes, parseEui64 } from '@fleetpki/core';
import { readLines } from './lines.js';

export interface RevocationList {
  readonly serials: string[];
  readonly devices: string[];
}

/**
 * Reads a list of certificates to revoke: one per line, a serial (hex) or an EUI-64, as plain lines, CSV
 * (first column; a header line naming serial or eui64 is skipped) or NDJSON ({"serial": ...} or
 * {"eui64": ...}). An EUI-64 is 16 hex digits (separators allowed); a serial is longer (18+ here).
 * Any other line is refused with its number.
 */
export async function readRevocationList(source: AsyncIterable<Buffer | string>): Promise<RevocationList> {
  const list: RevocationList = { serials: [], devices: [] };
  for await (const { lineNo, text } of readLines(source, { maxLineBytes: 4096, maxBytes: 256 * 1024 * 1024 })) {
    let value = text.trim();
    let field: 'serial' | 'eui64' | undefined;
    if (value.startsWith('{')) {
      let record: { serial?: unknown; eui64?: unknown };
      try {
        record = JSON.parse(value) as typeof record;
      } catch {
        throw new FleetError('LIST_LINE_INVALID', `line ${lineNo}: not JSON`, { httpStatus: 400 });
      }
      if (typeof record.serial === 'string') [value, field] = [record.serial, 'serial'];
      else if (typeof record.eui64 === 'string') [value, field] = [record.eui64, 'eui64'];
      else throw new FleetError('LIST_LINE_INVALID', `line ${lineNo}: expected {"serial": ...} or {"eui64": ...}`, { httpStatus: 400 });
    } else {
      value = value.split(',')[0]!.trim().replace(/^"(.*)"$/, '$1');
      if (lineNo === 1 && /^(serial|eui64|eui-64|device)$/i.test(value)) continue;
    }
    const compact = value.replace(/[-:]/g, '');
    if (!/^[0-9a-fA-F]+$/.test(compact)) throw new FleetError('LIST_LINE_INVALID', `line ${lineNo}: "${value.slice(0, 40)}" is neither a serial nor an EUI-64`, { httpStatus: 400 });
    if (field === 'eui64' || (field === undefined && compact.length === 16)) {
      list.devices.push(eui64ToBytes(parseEui64(value)).toString('hex').toUpperCase());
    } else {
      if (compact.length < 2 || compact.length > 40) throw new FleetError('LIST_LINE_INVALID', `line ${lineNo}: "${value.slice(0, 40)}" is not a serial number`, { httpStatus: 400 });
      list.serials.push(compact.toLowerCase());
    }
  }
  return list;
}
