// A site's cluster rebuilt from the backup repository, when there is nothing else to rebuild it from
// (both sites' data lost: docs/backup.md, "A disaster"). The other site is then copied from this one
// as usual (ensureStandby).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { prepareClusterDir, pgLogFile, writeSettings } from './postgres-cluster.js';
import { pgbackrest, writePgbackrestConf } from './pgbackrest.js';
import { pgDataDir, postmasterAlive } from './postmaster.js';
import { startRestoredCluster } from './restored-cluster.js';

/**
 * Restores the repository into `site`'s empty data directory, replays the whole archive and promotes: the
 * site is the primary, with no synchronous standby yet (nobody writes until the other site is back and
 * the agents run). Refuses a data directory that holds a cluster: this never restores over data.
 */
export async function restoreSiteFromRepository(config: FleetConfig, site: SiteConfig, log: (line: string) => void = () => undefined): Promise<{ restoreSeconds: number; recoverySeconds: number }> {
  const dataDir = pgDataDir(site);
  if (postmasterAlive(site) || existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new FleetError('SITE_DATA_PRESENT', `site ${site.id}'s data directory ${dataDir} holds a cluster: a restore from the repository goes into an empty one only (move it away first)`);
  }
  prepareClusterDir(dataDir);
  prepareClusterDir(join(site.dir, 'pg-log'));
  writePgbackrestConf(config, site);
  log(`site ${site.id}: restoring the repository into ${dataDir} (to the end of the archive)`);
  let started = Date.now();
  await pgbackrest(config, site, 'restore', { timeoutMs: 6 * 3_600_000 });
  const restoreSeconds = (Date.now() - started) / 1000;
  // The restored settings are whichever site's was primary at the backup: ours replace them, and
  // pgBackRest's recovery settings (restore_command) are kept past writeSettings, which resets the file.
  const auto = join(dataDir, 'postgresql.auto.conf');
  const recovery = readFileSync(auto, 'utf8');
  writeSettings(config, site, { role: 'primary' });
  appendFileSync(auto, recovery);
  started = Date.now();
  log(`site ${site.id}: replaying the archive`);
  await startRestoredCluster(config, site, { logFile: pgLogFile(site), what: `site ${site.id}'s restored cluster` });
  return { restoreSeconds, recoverySeconds: (Date.now() - started) / 1000 };
}
