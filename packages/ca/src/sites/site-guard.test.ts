import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it, mock } from 'node:test';
import { loadConfig } from '@fleetpki/core';
import type { Pool } from '@fleetpki/store';
import { postgresSiteStore } from './postgres-store.js';
import { CaStatusGuard, SiteGuard } from './site-guard.js';
import type { SiteStore } from './store.js';

/**
 * The guards read the database at most once a second and act on what they read in between. "A second"
 * is real time: with the wall clock set back an hour, a CA revoked meanwhile must not go on issuing for
 * that hour, nor a site that became a standby go on taking writes. The database here is a stand-in that
 * answers the two queries the guards make; the wall clock is node:test's mock.
 */
function standInDatabase(answers: { caStatus: string; inRecovery: boolean }): SiteStore {
  const query = async (sql: string) => {
    if (sql.includes('pg_is_in_recovery')) return { rows: [{ r: answers.inRecovery }] };
    if (sql.includes('FROM cas')) return { rows: [{ id: 'fpd1', kind: 'issuing', parent_id: 'root', subject_dn: 'CN=x', key_uri: 'pkcs11:', key_id: Buffer.alloc(0), certificate: Buffer.alloc(0), not_after: new Date(), status: answers.caStatus, revoked_at: null, revocation_reason: null }] };
    throw new Error(`unexpected query ${sql}`);
  };
  return postgresSiteStore({ query } as unknown as Pool);
}

const realSecond = () => new Promise((r) => setTimeout(r, 1_100));

describe('the site and CA guards re-read on a monotonic clock', () => {
  afterEach(() => mock.timers.reset());

  it('a CA revoked while the wall clock was set back an hour stops issuing within a second', async () => {
    const answers = { caStatus: 'active', inRecovery: false };
    const guard = new CaStatusGuard(standInDatabase(answers));
    await guard.assertActive('fpd1');
    mock.timers.enable({ apis: ['Date'], now: Date.now() - 3_600_000 });
    answers.caStatus = 'revoked';
    await realSecond();
    await assert.rejects(guard.assertActive('fpd1'), { code: 'CA_NOT_ACTIVE' });
  });

  it('a site whose database became a standby while the wall clock was set back refuses writes within a second', async () => {
    const answers = { caStatus: 'active', inRecovery: false };
    const config = loadConfig({ FLEETPKI_STATE_DIR: mkdtempSync(join(tmpdir(), 'fleetpki-site-guard-')) });
    const guard = new SiteGuard(standInDatabase(answers), config);
    assert.equal(await guard.isStandby(), false);
    mock.timers.enable({ apis: ['Date'], now: Date.now() - 3_600_000 });
    answers.inRecovery = true;
    await realSecond();
    assert.equal(await guard.isStandby(), true);
  });
});
