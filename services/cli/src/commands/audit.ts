import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { auditCheckpointFile, ensureAuditKey, sealAuditLog, verifyAuditLog } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { InputRuleError, readStrictPem } from '@fleetpki/x509';
import { FleetError } from '@fleetpki/core';
import { cliActor, withDatabase } from '../context.js';

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log: hash chain, seals, checkpoints outside the database');
  const checkpoints = (deploymentDir: string, given?: string) => given ?? auditCheckpointFile(deploymentDir);
  audit
    .command('seal')
    .description('link the settled rows into the hash chain and record a seal (also in the checkpoint file)')
    .option('--checkpoints <file>', 'checkpoint file outside the database (default .fleetpki/audit-checkpoints.ndjson)')
    .option('--settle-ms <ms>', 'leave rows younger than this for the next seal', Number, 5_000)
    .action(async (options: { checkpoints?: string; settleMs: number }) => {
      await withDatabase(async ({ config, pool }) => {
        // Signed by the site's audit key in its HSM (made and certified by the organisation CA on first use).
        const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
        try {
          const signer = await ensureAuditKey(pool, keyStore, config.site, cliActor());
          const r = await sealAuditLog(pool, checkpoints(config.deploymentDir, options.checkpoints), { settleMs: options.settleMs, signer });
          console.log(r.sealed ? `sealed ${r.sealed} rows up to seq ${r.lastSeq}, signed by audit key ${signer.keyId.toString('hex')}` : 'nothing to seal');
          if (r.gaps.length) console.error(`warning: no audit rows at seq ${r.gaps.join(', ')} (a rolled-back insert leaves such a hole; \`pnpm fleetpki audit verify\` tells a removed row apart)`);
        } finally {
          await keyStore.close();
        }
      });
    });
  audit
    .command('verify')
    .description('recompute the chain and check seals and checkpoints: reports modified, deleted and truncated records')
    .option('--checkpoints <file>', 'checkpoint file outside the database')
    .option('--root <pem>', "your own copy of the root CA certificate: the audit keys must chain to it (default: the database's root)")
    .option('--json', 'print JSON')
    .action(async (options: { checkpoints?: string; root?: string; json?: boolean }) => {
      await withDatabase(async ({ config, pool }) => {
        let trustedRoot: Buffer | undefined;
        try {
          trustedRoot = options.root ? readStrictPem(readFileSync(options.root, 'utf8'), ['CERTIFICATE'], options.root) : undefined;
        } catch (err) {
          if (err instanceof InputRuleError) throw new FleetError('INPUT_INVALID', `${err.message} [${err.rule}]`);
          throw err;
        }
        const r = await verifyAuditLog(pool, checkpoints(config.deploymentDir, options.checkpoints), trustedRoot ? { trustedRoot } : {});
        if (options.json) console.log(JSON.stringify(r));
        else {
          console.log(`${r.rows} audit rows, sealed up to seq ${r.sealedUpTo ?? '-'}; ${r.signedSeals} seals signed by a certified audit key${r.unsignedEarlySeals ? `, ${r.unsignedEarlySeals} from before signing began` : ''}${trustedRoot ? '' : ' (root taken from the database: pass --root for your own copy)'}: ${r.problems.length ? `${r.problems.length} problem(s)` : 'the chain is intact'}`);
          for (const p of r.problems) console.log(`  ${p.kind.padEnd(16)} seq ${p.seq}: ${p.detail}`);
        }
        if (r.problems.length) process.exitCode = 1;
      });
    });
}
