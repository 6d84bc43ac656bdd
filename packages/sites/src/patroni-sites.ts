// `sites up` and `sites down` for the databases when Patroni runs them (database.ha patroni).
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { ensureCaDatabase } from './postgres-cluster.js';
import { ensurePatroni, patroniCluster, patroniLogFile, patroniPid, stopPatroni, waitForPatroniRole } from './patroni.js';
import { writePgbackrestConf } from './pgbackrest.js';
import { currentRoles } from './topology-file.js';

type Log = (line: string) => void;

/**
 * Starts each site's Patroni (etcd must run: it is Patroni's store). On a new pair the topology's
 * primary starts first and initialises the cluster (initdb); the other then copies it (Patroni's
 * basebackup) and streams as its synchronous standby. On a pair that ran before, Patroni decides who
 * leads; this waits for a primary and for the standby to stream, and makes sure of the CA's database.
 */
export async function patroniSitesUp(config: FleetConfig, log: Log): Promise<void> {
  const { primary, standby } = currentRoles(config);
  for (const site of [primary, standby]) {
    // archive_command reads it; Patroni knows nothing of pgBackRest's file.
    try {
      writePgbackrestConf(config, site);
    } catch (err) {
      log(`site ${site.id}: pgBackRest's configuration not written, WAL archiving will fail: ${(err as Error).message}`);
    }
  }
  log(`site ${primary.id}: Patroni ${await ensurePatroni(config, primary)} (log ${patroniLogFile(primary)})`);
  const leader = await waitForLeader(config, primary);
  await ensureCaDatabase(config, leader);
  log(`site ${leader.id}: PostgreSQL primary on ${leader.host}:${leader.pgPort} (Patroni leader)`);
  log(`site ${standby.id}: Patroni ${await ensurePatroni(config, standby)} (log ${patroniLogFile(standby)})`);
  const follower = leader.id === primary.id ? standby : primary;
  await waitForPatroniRole(config, follower, 'sync', 600_000);
  log(`site ${follower.id}: PostgreSQL synchronous standby on ${follower.host}:${follower.pgPort} (Patroni)`);
}

/** The site whose PostgreSQL Patroni runs as the primary, once one is (the first site started bootstraps). */
async function waitForLeader(config: FleetConfig, first: SiteConfig): Promise<SiteConfig> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const cluster = await patroniCluster(config);
    const lead = cluster?.members.find((m) => m.role === 'leader' && m.state === 'running');
    if (lead) return config.sites[lead.site];
    if (patroniPid(first) === undefined || Date.now() > deadline) await waitForPatroniRole(config, first, 'primary', 1); // throws with what Patroni said
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Stops both Patronis, the standby's first (the primary would otherwise wait on it while stopping). */
export async function patroniSitesDown(config: FleetConfig): Promise<void> {
  const { primary, standby } = currentRoles(config);
  for (const site of [standby, primary]) await stopPatroni(site);
}
