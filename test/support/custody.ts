import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pool } from '@fleetpki/store';
import { createToken } from './ca.js';
import { cli } from './cli.js';

/**
 * Gives site B's token its clone of the CA keys, as the custodians would (custody create with 5
 * shares, restore with 3), for tests that fail over. Returns the custodian's token.
 */
export async function ensureStandbyKeys(pool: Pool): Promise<string> {
  const custodianToken = await createToken(pool, 'custodian', null, `test-custodian-${Date.now()}`);
  const env = { FLEETPKI_TOKEN: custodianToken };
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-custody-'));
  const created = await cli(['custody', 'create', '--custodians', '5', '--threshold', '3', '--out', dir], env);
  assert.equal(created.code, 0, created.stderr);
  const restored = await cli(['custody', 'restore', '--site', 'b', ...[1, 2, 3].flatMap((n) => ['--share', join(dir, `custodian-${n}.share`)])], env);
  assert.equal(restored.code, 0, restored.stderr);
  return custodianToken;
}
