// Starting a cluster that pgBackRest has just restored: PostgreSQL replays the archive (to a target, or
// to its end), then promotes. pg_ctl returns once the postmaster runs; this waits for the promotion and
// turns a replay that fails (a target it cannot reach, a segment missing) into an error naming the log.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { ownerPool } from './ca-databases.js';
import { pgBinDir, run } from './exec.js';
import { pgDataDir, postmasterAlive } from './postmaster.js';

/** Starts the restored cluster in `site`'s data directory and waits until it accepts writes; returns the seconds that took. */
export async function startRestoredCluster(config: FleetConfig, site: SiteConfig, options: { logFile: string; overrides?: readonly string[]; what: string; replayTimeoutMs?: number }): Promise<number> {
  const started = Date.now();
  const failed = (why: string, cause?: unknown) => {
    const tail = existsSync(options.logFile) ? readFileSync(options.logFile, 'utf8').trim().split('\n').slice(-5).join(' | ') : '';
    return new FleetError('RESTORE_RECOVERY_FAILED', `${options.what} did not finish recovery: ${why}${tail ? `; its log ends: ${tail}` : ''}`, cause ? { cause } : undefined);
  };
  // hot_standby off: nobody reads a cluster half-way through its replay.
  const overrides = ['-c hot_standby=off', ...(options.overrides ?? [])].join(' ');
  try {
    await run(join(pgBinDir(), 'pg_ctl'), ['start', '-D', pgDataDir(site), '-l', options.logFile, '-w', '-t', '600', '-o', overrides], { asPgUser: true, netns: site.netns, timeoutMs: 660_000 });
  } catch (err) {
    throw failed((err as Error).message, err);
  }
  // Until the promotion it refuses connections (57P03); a replay that fails ends the postmaster.
  const pool = ownerPool(config, site, 'postgres', { applicationName: 'fleetpki-restore', max: 1 });
  const deadline = Date.now() + (options.replayTimeoutMs ?? 6 * 3_600_000);
  try {
    for (;;) {
      if (!postmasterAlive(site)) throw failed('PostgreSQL stopped during replay');
      // A restore_command that hangs (a share gone) would otherwise keep this waiting for ever.
      if (Date.now() > deadline) throw failed(`still replaying after ${Math.round((options.replayTimeoutMs ?? 6 * 3_600_000) / 60_000)} min`);
      const open = await pool.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r').then(
        (q) => !q.rows[0]!.r,
        (err: { code?: string }) => {
          if (err.code === '57P03') return false;
          throw err;
        },
      );
      if (open) return (Date.now() - started) / 1000;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await pool.end();
  }
}
