import type { Command } from 'commander';
import { FleetError, loadConfig } from '@fleetpki/core';
import { BACKUP_TYPES, archiverState, archivingFails, checkBackups, isPrimaryNow, repositoryInfo, takeBackup, type BackupSet, type BackupType } from '@fleetpki/sites';

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function describe(b: BackupSet): string {
  const seconds = (b.stoppedAt.getTime() - b.startedAt.getTime()) / 1000;
  return `${b.label}  ${b.type.padEnd(4)}  ${b.stoppedAt.toISOString()}  ${seconds.toFixed(0).padStart(5)} s  cluster ${mb(b.databaseBytes)}, in the repository ${mb(b.repositoryBytes)}  (WAL ${b.walStart}..${b.walStop})`;
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('pgBackRest: WAL archive and backups of the CA database clusters, in a repository off the database hosts (docs/backup.md)');
  backup
    .command('run')
    .description('take a backup from the primary now, then expire what retention no longer keeps (infra/systemd: fleetpki-backup-full.timer weekly, fleetpki-backup-diff.timer daily)')
    .option('--type <type>', `one of ${BACKUP_TYPES.join(', ')}`, 'diff')
    .option('--here', "back up this host's site (this.site), and only if its cluster is the primary now: a timer on every database host, one backup wherever the primary is")
    .option('--json', 'print the new backup as JSON')
    .action(async (options: { type: string; here?: boolean; json?: boolean }) => {
      if (!BACKUP_TYPES.includes(options.type as BackupType)) throw new FleetError('INPUT_INVALID', `--type must be one of ${BACKUP_TYPES.join(', ')}, got "${options.type}"`);
      const config = loadConfig();
      const here = config.sites[config.site];
      if (options.here && !(await isPrimaryNow(config, here))) {
        console.log(`site ${here.id}'s cluster is a standby: no backup here (the primary's host takes it)`);
        return;
      }
      const made = await takeBackup(config, options.type as BackupType, options.here ? here : undefined);
      console.log(options.json ? JSON.stringify(made) : `backup taken: ${describe(made)}`);
    });
  backup
    .command('info')
    .description('what the repository holds: the backups retention keeps and the WAL archived')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const [info, archiver] = await Promise.all([repositoryInfo(config), archiverState(config)]);
      if (options.json) {
        console.log(JSON.stringify({ repository: config.backup.repository, ...info, archiver }));
        return;
      }
      console.log(`repository ${config.backup.repository}, stanza ${config.backup.stanza}: ${info.status.message}`);
      for (const b of info.backups) console.log(`  ${describe(b)}`);
      console.log(`archived WAL ${info.archive.min ?? '-'} .. ${info.archive.max ?? '-'}`);
      console.log(`site ${archiver.site} (primary) archiver: ${archiver.archived} archived, last ${archiver.lastArchivedWal ?? '-'} at ${archiver.lastArchivedAt?.toISOString() ?? '-'}; ${archiver.waitingSegments} waiting${archivingFails(archiver) ? `; FAILING since ${archiver.lastFailedAt!.toISOString()} (${archiver.lastFailedWal})` : ''}`);
    });
  backup
    .command('check')
    .description('prove the archive path end to end: the primary switches WAL segment and the repository must receive it')
    .action(async () => {
      const config = loadConfig();
      const started = Date.now();
      await checkBackups(config);
      console.log(`archive check passed: the primary's newest WAL segment reached ${config.backup.repository} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
}
