/**
 * pnpm bench failover [--stored 0,100000,1000000] [--devices N] [--json] [--deadline S]
 * The failover drill is the benchmark: for each size, the cluster first holds that many more
 * certificates (synthetic rows in a side database of the same cluster, replicated to B like everything
 * else: scripts/lib/synthetic-ca.ts), then the full drill runs (batch of N in flight, site A SIGKILLed,
 * B promoted, batch finished) and the failback restores A. Prints RTO, promotion time and failback
 * time per size, to show failover time does not grow with the database.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '@fleetpki/core';
import { approvedSwitchoverForDrill, runFailback, runFailoverDrill } from '@fleetpki/drills';
import { createPool } from '@fleetpki/store';
import { benchOptions } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { createSyntheticCaDatabase } from './lib/synthetic-ca.js';

const { values: args } = parseArgs({
  options: {
    stored: { type: 'string', default: '0,100000,1000000' },
    devices: { type: 'string', default: '20000' },
    ...benchOptions(3600),
  },
});
const run = new BenchRun('failover', { deadlineSeconds: Number(args.deadline), json: args.json });

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  const clusterMb = async (): Promise<number> => {
    const pool = createPool(config.sites.a.databaseUrl, { max: 1 });
    try {
      const { rows } = await pool.query<{ mb: number }>('SELECT (sum(pg_database_size(datname)) / 1048576)::int AS mb FROM pg_database');
      return rows[0]!.mb;
    } finally {
      await pool.end();
    }
  };

  const results = [];
  for (const stored of args.stored.split(',').map(Number)) {
    run.begin(`== ${stored} extra certificates stored`);
    const side = stored > 0 ? await createSyntheticCaDatabase(config, stored, (l) => run.log(`  ${l}`)) : undefined;
    if (side) run.onCleanup(() => side.drop());
    const size = await clusterMb();
    run.begin(`failover drill with ${args.devices} devices (${stored} extra stored)`);
    const drill = await runFailoverDrill(config, { devices: Number(args.devices), log: (l) => run.log(`  ${l}`) });
    run.log(`  RTO ${drill.rto_s} s (promotion ${drill.promote_s} s), RPO ${drill.rpo_lost}, duplicates ${drill.duplicate_serials}, batch complete ${drill.batch_complete}, OCSP ${drill.ocsp_answered} answered / ${drill.ocsp_failed} failed`);
    run.begin(`failback (${stored} extra stored)`);
    const back = await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config), log: (l) => run.log(`  ${l}`) });
    run.log(`  failback: ${back.how} in ${back.rebuild_s} s, switchover back ${back.switchover_s} s`);
    results.push({ stored_extra: stored, cluster_mb: size, certificates_in_ca_db: drill.certificates_stored, rto_s: drill.rto_s, promote_s: drill.promote_s, rpo_lost: drill.rpo_lost, duplicate_serials: drill.duplicate_serials, batch_complete: drill.batch_complete, failback: back.how, rebuild_s: back.rebuild_s, switchover_back_s: back.switchover_s });
    await side?.drop();
  }
  for (const r of results) run.log(`stored +${r.stored_extra} (cluster ${r.cluster_mb} MB): RTO ${r.rto_s} s, promotion ${r.promote_s} s, RPO ${r.rpo_lost}, failback ${r.failback} ${r.rebuild_s} s`);
  return { devices: Number(args.devices), runs: results };
});
