import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FleetConfig } from '@fleetpki/core';
import { createPool, migrate, type Pool } from '@fleetpki/store';
import { createScratchDatabase, ensureSites } from './support/sites.js';

/**
 * Upgrading an installation in use: a database at the schema before people (0014) with the tokens an
 * installation really has (one name for two manufacturers, one name for two roles, characters a
 * person's name may not hold, an officer token that carried a manufacturer) migrates to the latest
 * schema, and every token belongs to a person of its role and manufacturer.
 */
let config: FleetConfig;
let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
let pool: Pool;

before(async () => {
  config = await ensureSites();
  scratch = await createScratchDatabase(config);
  pool = createPool(scratch.urlA, { max: 2 });
});

after(async () => {
  await pool?.end();
  await scratch?.drop();
});

describe('migrating an installation with tokens made before people', () => {
  it('gives every token a person of its role and manufacturer, whatever the names', async () => {
    const all = join(config.repoRoot, 'migrations');
    const before = mkdtempSync(join(tmpdir(), 'fleetpki-migrations-'));
    for (const f of readdirSync(all).filter((f) => f.endsWith('.sql') && Number(f.slice(0, 4)) <= 14)) copyFileSync(join(all, f), join(before, f));
    await migrate(pool, before);
    await pool.query("INSERT INTO manufacturers (id, name) VALUES ('maker-one', 'One'), ('maker-two', 'Two')");
    const tokens: [string, string, string | null][] = [
      ['line-1', 'factory', 'maker-one'],
      ['line-1', 'factory', 'maker-one'],
      ['line-1', 'factory', 'maker-two'],
      ['ops', 'administrator', null],
      ['ops', 'auditor', null],
      ['Jane Doe (night shift)', 'revocation-officer', null],
      ['officer with maker', 'revocation-officer', 'maker-one'],
      ['x'.repeat(80), 'custodian', null],
      ['x'.repeat(80), 'auditor', null],
    ];
    for (const [name, role, maker] of tokens) {
      await pool.query('INSERT INTO api_tokens (id, name, token_sha256, role, manufacturer_id) VALUES ($1, $2, $3, $4, $5)', [randomUUID(), name, randomBytes(32), role, maker]);
    }
    const result = await migrate(pool, all);
    assert.ok(result.applied.some((m) => m.version === 15), 'the people migration ran');
    const { rows } = await pool.query<{ token: string; token_role: string; token_maker: string | null; person: string | null; person_role: string | null; person_maker: string | null }>(
      `SELECT t.name AS token, t.role AS token_role, t.manufacturer_id AS token_maker, p.name AS person, p.role AS person_role, p.manufacturer_id AS person_maker
         FROM api_tokens t LEFT JOIN people p ON p.id = t.person_id ORDER BY t.name, t.role`,
    );
    assert.equal(rows.length, tokens.length);
    for (const r of rows) {
      assert.ok(r.person, `token "${r.token}" has a person`);
      assert.equal(r.person_role, r.token_role);
      assert.equal(r.person_maker, r.token_role === 'factory' ? r.token_maker : null);
      assert.match(r.person!, /^[A-Za-z0-9._@/-]{1,64}$/);
    }
    const persons = new Map<string, Set<string>>();
    for (const r of rows) persons.set(`${r.token}|${r.token_role}|${r.token_maker}`, (persons.get(`${r.token}|${r.token_role}|${r.token_maker}`) ?? new Set()).add(r.person!));
    assert.ok([...persons.values()].every((s) => s.size === 1), 'tokens of one (name, role, manufacturer) share one person');
    assert.equal(new Set(rows.map((r) => r.person)).size, persons.size, 'and different ones never share a person');
  });
});
