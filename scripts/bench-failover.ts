/**
 * pnpm bench failover [--stored 0,100000,1000000] [--devices N] [--runs R] [--json] [--deadline S]
 * For each size the cluster first holds that many more certificates (synthetic rows in a side database
 * of the same cluster, replicated to B like everything else: scripts/lib/synthetic-ca.ts), then:
 * - the failover drill (batch of N in flight, every process of the active site SIGKILLed, the agents
 *   and etcd fail over, the batch finished on B) and the failback (A rewound by its agent, approved
 *   switchover back): RPO, duplicates, batch completion;
 * - R automatic takeovers under online enrolment traffic, each a kill -9 of the active site's PostgreSQL
 *   (and, with database.ha patroni, its Patroni: the database host dies) with the services alive,
 *   alternating between the sites: RTO (last enrolment acknowledged by the old
 *   site to the first by the new one) min/median/max, and how the killed site rejoined (pg_rewind or
 *   base backup) with its time;
 * - one forced manual failover (`sites failover --force`: the live site's lease revoked) and one planned
 *   switchover, each with its RTO.
 * Failover and failback time should not grow with the database, only with the WAL written since the
 * last checkpoint: the synthetic rows are written just before the kill, so the larger sizes show that
 * second cost (infra/README.md, the checkpoint settings).
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '@fleetpki/core';
import { TakeoverRuns, approvedSwitchoverForDrill, runFailback, runFailoverDrill, spread, type TakeoverRun } from '@fleetpki/drills';
import { currentRoles, switchover } from '@fleetpki/sites';
import { createPool } from '@fleetpki/store';
import { benchOptions } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { createSyntheticCaDatabase } from './lib/synthetic-ca.js';

const { values: args } = parseArgs({
  options: {
    stored: { type: 'string', default: '0,100000,1000000' },
    devices: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '10' },
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
    const side = stored > 0 ? await createSyntheticCaDatabase(config, stored, (l) => run.log(`  ${l}`), (drop) => run.onCleanup(drop)) : undefined;
    const size = await clusterMb();
    run.begin(`failover drill with ${args.devices} devices (${stored} extra stored)`);
    const failedOverAt = Date.now();
    const drill = await runFailoverDrill(config, { devices: Number(args.devices), log: (l) => run.log(`  ${l}`) });
    run.log(`  RTO ${drill.rto_s} s (promotion ${drill.promote_s} s), RPO ${drill.rpo_lost}, duplicates ${drill.duplicate_serials}, batch complete ${drill.batch_complete}, OCSP ${drill.ocsp_answered} answered / ${drill.ocsp_try_later} tryLater / ${drill.ocsp_failed} failed`);
    run.begin(`failback (${stored} extra stored)`);
    const back = await runFailback(config, { switchBack: await approvedSwitchoverForDrill(config), failedOverAt, log: (l) => run.log(`  ${l}`) });
    run.log(`  failback: ${back.how} in ${back.rebuild_s} s, switchover back ${back.switchover_s} s`);
    run.begin(`${args.runs} automatic takeovers (kill -9 of the active site's PostgreSQL${config.databaseHa === 'patroni' ? ' and Patroni' : ''}), then a forced failover and a switchover (${stored} extra stored)`);
    const takeovers = await TakeoverRuns.start(config, { devices: Math.max(2_000, (Number(args.runs) + 3) * 1_500), log: (l) => run.log(`  ${l}`) });
    const automatic: TakeoverRun[] = [];
    let forced: TakeoverRun;
    let planned: TakeoverRun;
    try {
      for (let i = 0; i < Number(args.runs); i++) {
        const r = await takeovers.run('kill-postgres');
        automatic.push(r);
        run.log(`  run ${i + 1}: ${r.from} -> ${r.to} RTO ${r.rto_s} s, RPO ${r.rpo_lost}, ${r.from} ${r.rejoin.how} in ${r.rejoin.seconds} s`);
      }
      forced = await takeovers.run('forced');
      run.log(`  forced failover ${forced.from} -> ${forced.to}: RTO ${forced.rto_s} s, RPO ${forced.rpo_lost}`);
      planned = await takeovers.run('switchover');
      run.log(`  switchover ${planned.from} -> ${planned.to}: RTO ${planned.rto_s} s, RPO ${planned.rpo_lost}`);
      // The next size (and whoever runs next) starts with site A active.
      if (currentRoles(config).primary.id !== 'a') await switchover(config, 'bench failover: back to a');
    } finally {
      await takeovers.stop();
    }
    const rto = spread(automatic.map((r) => r.rto_s));
    const rejoins = automatic.map((r) => r.rejoin);
    const rewind = spread(rejoins.filter((r) => r.how === 'rewound').map((r) => r.seconds));
    results.push({
      stored_extra: stored,
      cluster_mb: size,
      certificates_in_ca_db: drill.certificates_stored,
      rto_s: drill.rto_s,
      promote_s: drill.promote_s,
      rpo_lost: drill.rpo_lost + automatic.reduce((n, r) => n + r.rpo_lost, 0) + forced.rpo_lost + planned.rpo_lost,
      duplicate_serials: drill.duplicate_serials,
      batch_complete: drill.batch_complete,
      failback: back.how,
      rebuild_s: back.rebuild_s,
      switchover_back_s: back.switchover_s,
      automatic_runs: automatic.length,
      automatic_rto_min_s: rto.min,
      automatic_rto_median_s: rto.median,
      automatic_rto_max_s: rto.max,
      rejoins_rewound: rejoins.filter((r) => r.how === 'rewound').length,
      rejoins_copied: rejoins.filter((r) => r.how === 'copied').length,
      rewind_min_s: rewind.min,
      rewind_median_s: rewind.median,
      rewind_max_s: rewind.max,
      forced_rto_s: forced.rto_s,
      switchover_rto_s: planned.rto_s,
    });
    await side?.drop();
  }
  for (const r of results) {
    run.log(
      `${config.databaseHa === 'patroni' ? 'Patroni' : 'site agent'}: stored +${r.stored_extra} (cluster ${r.cluster_mb} MB): automatic RTO min/median/max ${r.automatic_rto_min_s}/${r.automatic_rto_median_s}/${r.automatic_rto_max_s} s over ${r.automatic_runs} runs, ` +
        `rejoin by pg_rewind ${r.rejoins_rewound}x (${r.rewind_min_s}/${r.rewind_median_s}/${r.rewind_max_s} s), base backup ${r.rejoins_copied}x; forced failover RTO ${r.forced_rto_s} s, switchover RTO ${r.switchover_rto_s} s; ` +
        `drill RTO ${r.rto_s} s, failback ${r.failback} ${r.rebuild_s} s; RPO ${r.rpo_lost}, duplicates ${r.duplicate_serials}`,
    );
  }
  return { database_ha: config.databaseHa, devices: Number(args.devices), runs: results };
});
