import type { Command } from 'commander';
import { auditCheckpointFile, sealAuditLog, verifyAuditLog } from '@fleetpki/ca';
import { withDatabase } from '../context.js';

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log: hash chain, seals, checkpoints outside the database');
  const checkpoints = (stateDir: string, given?: string) => given ?? auditCheckpointFile(stateDir);
  audit
    .command('seal')
    .description('link the settled rows into the hash chain and record a seal (also in the checkpoint file)')
    .option('--checkpoints <file>', 'checkpoint file outside the database (default .fleetpki/audit-checkpoints.ndjson)')
    .option('--settle-ms <ms>', 'leave rows younger than this for the next seal', Number, 5_000)
    .action(async (options: { checkpoints?: string; settleMs: number }) => {
      await withDatabase(async ({ config, pool }) => {
        const r = await sealAuditLog(pool, checkpoints(config.stateDir, options.checkpoints), { settleMs: options.settleMs });
        console.log(r.sealed ? `sealed ${r.sealed} rows up to seq ${r.lastSeq}` : 'nothing to seal');
      });
    });
  audit
    .command('verify')
    .description('recompute the chain and check seals and checkpoints: reports modified, deleted and truncated records')
    .option('--checkpoints <file>', 'checkpoint file outside the database')
    .option('--json', 'print JSON')
    .action(async (options: { checkpoints?: string; json?: boolean }) => {
      await withDatabase(async ({ config, pool }) => {
        const r = await verifyAuditLog(pool, checkpoints(config.stateDir, options.checkpoints));
        if (options.json) console.log(JSON.stringify(r));
        else {
          console.log(`${r.rows} audit rows, sealed up to seq ${r.sealedUpTo ?? '-'}: ${r.problems.length ? `${r.problems.length} problem(s)` : 'the chain is intact'}`);
          for (const p of r.problems) console.log(`  ${p.kind.padEnd(16)} seq ${p.seq}: ${p.detail}`);
        }
        if (r.problems.length) process.exitCode = 1;
      });
    });
}
