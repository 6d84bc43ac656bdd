import { readFileSync } from 'node:fs';
import { parseCustodianShare, type CustodianShare } from '@fleetpki/ca';
import { FleetError } from '@fleetpki/core';

/** The custodians' share files, read and parsed; an unreadable or malformed one is named. */
export function readShares(files: readonly string[]): CustodianShare[] {
  return files.map((f) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new FleetError('SHARE_UNREADABLE', `cannot read share file ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return parseCustodianShare(text, f);
  });
}
