import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isFleetError } from '@fleetpki/core';
import { encodeCopyValue } from './copy.js';
import { readMigrations } from './migrate.js';

describe('COPY text encoding', () => {
  it('escapes what COPY text format treats specially', () => {
    assert.equal(encodeCopyValue(null), '\\N');
    assert.equal(encodeCopyValue('a\tb\nc\\d\re'), 'a\\tb\\nc\\\\d\\re');
    assert.equal(encodeCopyValue(Buffer.from([0xde, 0xad])), '\\\\xdead');
    assert.equal(encodeCopyValue(true), 't');
    assert.equal(encodeCopyValue(12n), '12');
    assert.equal(encodeCopyValue(new Date('2026-01-02T03:04:05Z')), '2026-01-02T03:04:05.000Z');
  });
});

describe('readMigrations', () => {
  function dirWith(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-mig-'));
    for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
    return dir;
  }

  it('orders by version and checksums each file', async () => {
    const migrations = await readMigrations(dirWith({ '0002_b.sql': 'SELECT 2', '0001_a.sql': 'SELECT 1', 'README.txt': 'ignored' }));
    assert.deepEqual(migrations.map((m) => [m.version, m.name]), [[1, 'a'], [2, 'b']]);
    assert.match(migrations[0]!.sha256, /^[0-9a-f]{64}$/);
  });

  it('refuses stray names and duplicate numbers', async () => {
    await assert.rejects(readMigrations(dirWith({ '1_a.sql': '' })), (err: unknown) => isFleetError(err, 'MIGRATION_BAD_NAME'));
    await assert.rejects(readMigrations(dirWith({ '0001_a.sql': '', '0001_b.sql': '' })), (err: unknown) => isFleetError(err, 'MIGRATION_DUPLICATE'));
  });
});
