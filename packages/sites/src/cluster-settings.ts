// The PostgreSQL settings of a site's cluster, whoever runs it: the site agent (fleetpki.conf) or Patroni.
import type { FleetConfig, SiteConfig } from '@fleetpki/core';
import { archiveCommand } from './pgbackrest.js';
import { pgServerTls, pgTlsSettings } from './postgres-tls.js';

/**
 * The settings of a site's cluster whoever runs it (the site agent's fleetpki.conf, or Patroni's
 * postgresql.parameters): `name = value` lines as postgresql.conf takes them. Not the port, the listen
 * address or what replication follows from the topology (synchronous_standby_names, primary_conninfo):
 * those are the runner's.
 */
export function sharedSettings(config: FleetConfig, site: SiteConfig): string[] {
  const lines = [
    // No Unix socket: the state folder path can exceed the 107-byte socket path limit, and TCP is enough.
    `unix_socket_directories = ''`,
    `cluster_name = 'fleetpki-${site.id}'`,
    `max_connections = 200`,
    `shared_buffers = 256MB`,
    `wal_level = replica`,
    `max_wal_senders = 10`,
    `max_replication_slots = 10`,
    // Needed by pg_rewind when a failed primary is rebuilt as the new primary's standby (failback).
    `wal_log_hints = on`,
    // pg_rewind reads the failed primary's WAL back to where the timelines split; keep enough of it.
    `wal_keep_size = '1GB'`,
    // A standby that is gone for long (its host down while the primary runs unprotected) holds WAL on the
    // primary through its replication slot; unbounded, that fills pg_wal and stops the primary, the CA
    // with it. Past this much the slot is given up instead and the standby has to be copied again from the
    // primary (`patronictl reinit`; under the site agent, its data directory removed and `sites up`); the
    // archive still holds every segment. Strictly synchronous, a standby cannot fall this far behind.
    `max_slot_wal_keep_size = '16GB'`,
    `hot_standby = on`,
    `hot_standby_feedback = on`,
    // remote_apply, not on: a commit returns once the standby has applied it, so a read on the standby
    // after an acknowledged revocation sees it (its OCSP responder never says "good" for it afterwards).
    `synchronous_commit = remote_apply`,
    // A standby reports every second, and a walsender gives up on a silent one after 10 s: the primary
    // tells "frozen or cut off" from "streaming" soon (fp_sync_standby's reply_age_ms, the site agent).
    `wal_receiver_status_interval = 1s`,
    `wal_sender_timeout = 10s`,
    // How much WAL a checkpoint may leave behind it bounds failover, not only crash recovery: a killed
    // primary rejoins by replaying the WAL since its last checkpoint (crash recovery), pg_rewind copies
    // every block changed since then, and the rewound standby replays that WAL again, while the new
    // primary's writes wait for it (strictly synchronous). With 15 min / 8 GB (tried for bulk issuance)
    // the drill's RTO after 2M rows written was 55 s and the cap was minutes; a checkpoint every minute
    // or GB bounds it. lz4 compresses the full-page images that each checkpoint brings back (random
    // serials touch most B-tree pages): a 300k batch wrote less WAL than before, at the same rate. No
    // recycling: pg_rewind copies the source's whole pg_wal, pre-allocated segments included.
    // Figures: infra/README.md.
    `max_wal_size = '1GB'`,
    `checkpoint_timeout = '1min'`,
    `wal_compression = lz4`,
    `wal_recycle = off`,
    `checkpoint_completion_target = 0.9`,
    // Batch intake sorts and de-duplicates manifests in memory rather than on disk.
    `work_mem = '32MB'`,
    `maintenance_work_mem = '256MB'`,
    // Which statements cost what (`CREATE EXTENSION pg_stat_statements` in the CA database, then read
    // the view): how the reconciler's full scan of online intents was found. A few % of statement time.
    `shared_preload_libraries = 'pg_stat_statements'`,
    // Every WAL segment goes to the backup repository (pgbackrest.ts) from the primary: with backups,
    // that is what a restore to any point in time replays. Not `always`: both sites pushing the same
    // segment at the same moment write the same temporary file in the repository, and with encryption
    // (a random salt each) two writers' bytes would interleave. Instead a promoted standby pushes the
    // old timeline's segments it received (archiveInheritedWal), so a primary killed with segments not
    // yet pushed leaves no hole. A quiet primary still closes a segment a minute (docs/backup.md).
    `archive_mode = on`,
    `archive_command = '${archiveCommand(site, config.backup.stanza)}'`,
    `archive_timeout = '60s'`,
    // Each transaction's commit time, for the restore drill: which certificates a restore to T must hold
    // is those committed by T (recovery stops at commit records), not those whose transaction began by T.
    `track_commit_timestamp = on`,
    `log_destination = 'stderr'`,
    `log_min_messages = warning`,
  ];
  if (pgServerTls(config)) lines.push(...pgTlsSettings(site));
  return lines;
}

