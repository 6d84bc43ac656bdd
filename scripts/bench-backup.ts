/**
 * pnpm bench backup [--stored 1000000] [--der-bytes 400] [--devices 100000] [--json] [--deadline S]
 * The backups of issue 35, measured on the real parts (pgBackRest, both sites' clusters):
 * - a full backup with `--stored` more certificates in the cluster (synthetic rows of realistic size in a
 *   side database: scripts/lib/synthetic-ca.ts): its time, the cluster's size and the repository's;
 * - the WAL archive under `pnpm bench batch --devices N` run beside it: WAL written, segments archived,
 *   and the archive lag, sampled every half second as the age of the oldest segment waiting to be
 *   archived (.ready in pg_wal/archive_status) and how many wait; the batch's own figures (certificates/s,
 *   its ratio to the raw HSM signing rate) from its last line;
 * - a restore to a point in time T between the batch and rows added after it (`fleetpki drill restore`'s
 *   code, on the side database): restore and recovery time, and the proof: the certificates there at T
 *   are all back, those added after T are not.
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { loadConfig } from '@fleetpki/core';
import { runRestoreDrill } from '@fleetpki/drills';
import { ownerPool, repositoryInfo, takeBackup } from '@fleetpki/sites';
import { benchOptions, percentile } from './lib/bench.js';
import { BenchRun } from './lib/bench-run.js';
import { createSyntheticCaDatabase } from './lib/synthetic-ca.js';

const { values: args } = parseArgs({
  options: {
    stored: { type: 'string', default: '1000000' },
    'der-bytes': { type: 'string', default: '400' },
    devices: { type: 'string', default: '100000' },
    ...benchOptions(7200),
  },
});
const run = new BenchRun('backup', { deadlineSeconds: Number(args.deadline), json: args.json });
const mb = (bytes: number) => Number((bytes / 1048576).toFixed(1));

await run.main(async () => {
  const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
  const stored = Number(args.stored);
  run.begin(`a side database with ${stored} certificates of ${args['der-bytes']} bytes`);
  const side = await createSyntheticCaDatabase(config, stored, (l) => run.log(`  ${l}`), (drop) => run.onCleanup(drop), { derBytes: Number(args['der-bytes']) });
  const admin = ownerPool(config, config.sites.a, 'postgres', { max: 1, applicationName: 'fleetpki-bench' });
  run.onCleanup(() => admin.end());
  const clusterBytes = Number((await admin.query<{ b: string }>('SELECT sum(pg_database_size(datname))::text AS b FROM pg_database')).rows[0]!.b);

  run.begin(`full backup (cluster ${mb(clusterBytes)} MB)`);
  let started = performance.now();
  const full = await takeBackup(config, 'full');
  const fullSeconds = run.seconds(started);
  run.log(`  ${full.label}: ${fullSeconds} s, cluster ${mb(full.databaseBytes)} MB, in the repository ${mb(full.repositoryBytes)} MB`);

  run.begin(`the WAL archive under bench batch --devices ${args.devices}`);
  const samples: { ageS: number; waiting: number }[] = [];
  const archiver = async () =>
    (await admin.query<{ lsn: string; archived: string; failed: string; waiting: string; age: number | null }>(
      `SELECT pg_current_wal_lsn()::text AS lsn, archived_count::text AS archived, failed_count::text AS failed,
              (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')::text AS waiting,
              (SELECT extract(epoch FROM now() - min(modification))::float8 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS age
         FROM pg_stat_archiver`,
    )).rows[0]!;
  const before = await archiver();
  const batch = run.track(spawn(process.execPath, [...process.execArgv, 'scripts/bench-batch.ts', '--devices', args.devices, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] }), 'bench batch');
  let batchOut = '';
  batch.stdout!.on('data', (d: Buffer) => (batchOut += d.toString()));
  const ended = new Promise<void>((resolve) => batch.once('exit', () => resolve()));
  run.untrack(batch);
  let done = false;
  void ended.then(() => (done = true));
  while (!done) {
    const s = await archiver();
    samples.push({ ageS: s.age ?? 0, waiting: Number(s.waiting) });
    await new Promise((r) => setTimeout(r, 500));
  }
  const batchResult = JSON.parse(batchOut.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  if (batchResult.error) run.fail('BENCH_BATCH_FAILED', `bench batch: ${String(batchResult.error)} ${String(batchResult.message ?? '')}`);
  // Until the archive has caught up with the batch: how long after the batch the last segment waited.
  started = performance.now();
  await run.waitUntil('the archive catching up', async () => {
    const s = await archiver();
    return { done: Number(s.waiting) === 0, progress: `${s.waiting} segments waiting` };
  });
  const catchUpSeconds = run.seconds(started);
  const after = await archiver();
  const walBytes = Number((await admin.query<{ b: string }>('SELECT pg_wal_lsn_diff($1, $2)::text AS b', [after.lsn, before.lsn])).rows[0]!.b);
  const ages = samples.map((s) => s.ageS).sort((a, b) => a - b);
  const waiting = samples.map((s) => s.waiting).sort((a, b) => a - b);
  const archive = {
    wal_written_mb: mb(walBytes),
    segments_archived: Number(after.archived) - Number(before.archived),
    archive_failures: Number(after.failed) - Number(before.failed),
    lag_median_s: Number(percentile(ages, 50).toFixed(2)),
    lag_p99_s: Number(percentile(ages, 99).toFixed(2)),
    lag_max_s: Number((ages[ages.length - 1] ?? 0).toFixed(2)),
    waiting_max_segments: waiting[waiting.length - 1] ?? 0,
    catch_up_after_batch_s: catchUpSeconds,
  };
  run.log(`  batch: ${String(batchResult.certificates_per_s ?? '?')} certificates/s, ratio to raw HSM ${String(batchResult.ratio_to_raw_hsm ?? '?')}; WAL ${archive.wal_written_mb} MB, ${archive.segments_archived} segments archived, ${archive.archive_failures} failures`);
  run.log(`  archive lag (oldest segment waiting) median ${archive.lag_median_s} s, p99 ${archive.lag_p99_s} s, max ${archive.lag_max_s} s; at most ${archive.waiting_max_segments} segments waiting; caught up ${catchUpSeconds} s after the batch`);

  run.begin('restore to a point in time T, rows added after T');
  await new Promise((r) => setTimeout(r, 1_100));
  const target = new Date();
  await new Promise((r) => setTimeout(r, 1_100));
  await side.add(10_000);
  const drill = await runRestoreDrill({ ...config, pgDatabase: side.name }, { target, log: (l) => run.log(`  ${l}`) });
  // The rows added after T commit after it (their issued_at, set back a minute by the generator, does not count: commit times do).
  const proof = drill.commit_times && drill.certificates_restored === stored && drill.live_certificates_by_target === stored && drill.removed_since_target === 0 && drill.missing_from_restore === 0;
  run.log(`  restore ${drill.restore_s} s + recovery ${drill.recovery_s} s; ${drill.certificates_restored} certificates back of ${drill.live_certificates_by_target} there at T, none of the 10000 added after: ${proof}`);
  const info = await repositoryInfo(config);
  return {
    stored,
    der_bytes: Number(args['der-bytes']),
    cluster_mb: mb(clusterBytes),
    full_backup_s: fullSeconds,
    full_backup_repository_mb: mb(full.repositoryBytes),
    full_backup_cluster_mb: mb(full.databaseBytes),
    batch_devices: Number(args.devices),
    batch_certificates_per_s: batchResult.certificates_per_s ?? null,
    batch_raw_hsm_signatures_per_s: batchResult.raw_hsm_signatures_per_s ?? null,
    batch_cpu_core_us_per_certificate: batchResult.cpu_core_us_per_certificate ?? null,
    batch_ratio_to_raw_hsm: batchResult.ratio_to_raw_hsm ?? null,
    archive,
    restore_s: drill.restore_s,
    recovery_s: drill.recovery_s,
    restored_certificates: drill.certificates_restored,
    restore_proves_target: proof,
    backups_kept: info.backups.length,
  };
});
