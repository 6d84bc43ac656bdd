/**
 * The README's first command ends here: a tour of what fleetpki does on this machine, with figures.
 * It grows with each capability (ceremony, factory batch, revocation, failover drill).
 */
import { join } from 'node:path';
import { loadConfig } from '@fleetpki/core';
import { hsmSelfTest, openSiteKeyStore } from '@fleetpki/hsm';
import { formatStatus, sitesStatus, sitesUp } from '@fleetpki/sites';
import { createPool, migrate } from '@fleetpki/store';

function heading(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

const config = loadConfig();

heading('1. Sites: SoftHSM tokens, PostgreSQL primary (A) with synchronous hot standby (B), Redis per site');
let started = Date.now();
await sitesUp(config, (line) => console.log(`  ${line}`));
console.log(`  (${Date.now() - started} ms)`);

heading('2. Database schema');
const pool = createPool(config.sites.a.databaseUrl, { max: 1 });
try {
  const result = await migrate(pool, join(config.repoRoot, 'migrations'));
  console.log(`  ${result.alreadyApplied + result.applied.length} migrations in place (${result.applied.length} applied now)`);
} finally {
  await pool.end();
}

heading("3. HSM smoke test on site A's token");
const store = await openSiteKeyStore(config);
try {
  started = Date.now();
  const r = await hsmSelfTest(store, 'self-test', 2_000);
  console.log(`  token ${r.token}: P-256 key "${r.keyLabel}" ${r.keyCreated ? 'generated' : 'present'}; signature verified by node:crypto: ${r.signatureVerified}`);
  console.log(`  private key CKA_SENSITIVE: ${r.privateKeySensitive}; raw signing rate, one session: ${r.signaturesPerSecond} signatures/s`);
  if (!r.signatureVerified || !r.privateKeySensitive) process.exitCode = 1;
} finally {
  await store.close();
}

heading('4. Status');
console.log(
  formatStatus(await sitesStatus(config))
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
);
console.log('\nStop everything with `pnpm sites down`; data stays in .fleetpki/ for the next `pnpm sites up`.');
