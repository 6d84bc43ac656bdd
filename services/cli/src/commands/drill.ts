import type { Command } from 'commander';
import { auditActor } from '@fleetpki/ca';
import { FleetError, loadConfig } from '@fleetpki/core';
import { commandLineStarter, runDisasterDrill, runFailback, runFailoverDrill, runRestoreDrill, runSwitchoverDrill, withDrillLock } from '@fleetpki/drills';
import { consensusStatus, formatStatus, readTopology, sitesStatus } from '@fleetpki/sites';
import { executeApproved, requireOfficer, withDatabase } from '../context.js';
import { readShares } from '../custodian-shares.js';

/** Prints the report: a readable list, or with --json one object on the last line. */
/**
 * A drill process starts, kills and reconnects to many things (services, pools, etcd, probes). Once its
 * report is out it ends: if something is still open 5 s later, it names it on stderr (a leak to mend)
 * and exits, so a leak never turns a finished drill into a hung one (a CI run killed it once, its report
 * printed and complete).
 */
function endAfterReport(): void {
  setTimeout(() => {
    console.error(`fleetpki drill: still open 5 s after the report: ${process.getActiveResourcesInfo().join(', ')}; exiting`);
    process.exit();
  }, 5_000).unref();
}

async function report(result: object, json: boolean | undefined): Promise<void> {
  endAfterReport();
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  for (const [k, v] of Object.entries(result)) console.log(`  ${k.padEnd(30)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  const config = loadConfig();
  console.log(`\n${formatStatus(await sitesStatus(config), await consensusStatus(config))}`);
}

export function registerDrillCommands(program: Command): void {
  const drill = program.command('drill').description('site drills: failover (unplanned), switchover (planned), failback; recovery drills: restore; one at a time (a lock in etcd)');
  drill
    .command('restore')
    .description('restore the backup repository into a scratch cluster as of --to-time and prove what came back: certificates issued by then, the last of them, the audit chain and seals; the sites are not touched')
    .requiredOption('--to-time <time>', 'ISO 8601 time to restore to (e.g. 2026-12-07T05:40:00Z)')
    .option('--json', 'one JSON object on the last line')
    .action(async (options: { toTime: string; json?: boolean }) => {
      const config = loadConfig();
      const log = options.json ? undefined : (l: string) => console.log(l);
      const target = new Date(options.toTime);
      if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(options.toTime) || Number.isNaN(target.getTime())) {
        throw new FleetError('INPUT_INVALID', `--to-time must be an ISO 8601 time with its zone (e.g. 2026-12-07T05:40:00Z), got "${options.toTime}"`);
      }
      const result = await withDrillLock(config, 'restore', commandLineStarter(), () => runRestoreDrill(config, { target, ...(log ? { log } : {}) }), log);
      await report(result, options.json);
      if (!result.verified) process.exitCode = 1;
    });
  drill
    .command('disaster')
    .description("lose both sites' data directories and HSM tokens, then rebuild: the active site from the backup repository, the other copied from it, the keys from custodian shares; time to the first certificate issued again (docs/backup.md). Destroys both sites' databases: a drill environment only")
    .requiredOption('--share <file...>', 'custodian share files of the key-encryption key (at least the threshold)')
    .option('--token-file <file>', "a custodian's API token (default: $FLEETPKI_TOKEN)")
    .option('--archive-first', 'archive the WAL before the loss (nothing lost); without it what was not archived yet is lost, and counted')
    .option('--destroy-both-sites', 'required: says you mean it')
    .option('--json', 'one JSON object on the last line')
    .action(async (options: { share: string[]; tokenFile?: string; archiveFirst?: boolean; destroyBothSites?: boolean; json?: boolean }) => {
      if (!options.destroyBothSites) throw new FleetError('CONFIRMATION_REQUIRED', "the disaster drill deletes both sites' data directories and HSM tokens: add --destroy-both-sites on a drill environment");
      const config = loadConfig();
      const shares = readShares(options.share);
      // The custodian is checked before anything is lost: the token lives in the database the drill destroys.
      const custodian = await withDatabase(({ pool }) => requireOfficer(pool, options.tokenFile, ['custodian'], 'a disaster drill (it restores the keys from shares)'), { site: readTopology(config).primary });
      const log = options.json ? undefined : (l: string) => console.log(l);
      const result = await withDrillLock(config, 'disaster', commandLineStarter(), () => runDisasterDrill(config, { shares, archiveFirst: options.archiveFirst ?? false, startedBy: auditActor(custodian), ...(log ? { log } : {}) }), log);
      await report(result, options.json);
      if (!result.new_certificate_verifies || (options.archiveFirst && (result.old_certificate_verifies !== true || result.certificates_lost !== 0))) process.exitCode = 1;
    });
  drill
    .command('failover')
    .description('SIGKILL the active site mid-batch with enrolments running, promote the standby, finish the batch there; RTO, RPO, duplicates')
    .option('--devices <n>', 'devices in the batch in flight', Number, 20_000)
    .option('--json', 'one JSON object on the last line')
    .option('--started-by <who>', 'who started it, shown to a drill refused meanwhile (the API names the two administrators)')
    .action(async (options: { devices: number; json?: boolean; startedBy?: string }) => {
      const config = loadConfig();
      const log = options.json ? undefined : (l: string) => console.log(l);
      const result = await withDrillLock(config, 'failover', options.startedBy ?? commandLineStarter(), () => runFailoverDrill(config, { devices: options.devices, log }), log);
      await report(result, options.json);
      if (result.rpo_lost !== 0 || result.duplicate_serials !== 0 || !result.batch_complete || result.batch_devices_not_exactly_one !== 0) process.exitCode = 1;
    });
  drill
    .command('switchover')
    .description('planned switchover to the standby with enrolments running: zero loss; measures the downtime. Dual control: needs an approved site.switchover request')
    .option('--json', 'one JSON object on the last line')
    .option('--approval <id>', 'the approved site.switchover request (pnpm fleetpki approvals request site.switchover)')
    .option('--token-file <file>', "the executing administrator's API token (the requester or the approver)")
    .action(async (options: { json?: boolean; approval?: string; tokenFile?: string }) => {
      if (!options.approval) throw new FleetError('DUAL_CONTROL_REQUIRED', 'a planned switchover needs a second administrator: pnpm fleetpki approvals request site.switchover --token-file <yours>, then --approval <id> --token-file <yours> here once another administrator approved it');
      const config = loadConfig();
      const log = options.json ? undefined : (l: string) => console.log(l);
      // The approval lives on the active site, whichever that is now.
      const result = await withDrillLock(config, 'switchover', commandLineStarter(), () => withDatabase(({ pool }) => executeApproved(config, pool, options.approval!, options.tokenFile, 'site.switchover', () => runSwitchoverDrill(config, log)), { site: readTopology(config).primary }), log);
      await report(result, options.json);
      if (result.rpo_lost !== 0) process.exitCode = 1;
    });
  drill
    .command('failback')
    .description('after a failover: rebuild the failed site as standby (pg_rewind), then switch back to it, which is a planned switchover: it needs an approved site.switchover request (requested on the active site)')
    .option('--stay', 'rebuild only; keep the current active site')
    .option('--approval <id>', 'the approved site.switchover request for the switch back')
    .option('--token-file <file>', "the executing administrator's API token (the requester or the approver)")
    .option('--json', 'one JSON object on the last line')
    .action(async (options: { stay?: boolean; approval?: string; tokenFile?: string; json?: boolean }) => {
      const config = loadConfig();
      if (!options.stay && !options.approval) {
        throw new FleetError('DUAL_CONTROL_REQUIRED', 'switching back is a planned switchover: pnpm fleetpki approvals request site.switchover (on the active site), a second administrator approves, then --approval <id> --token-file <yours> here; or --stay to rebuild only');
      }
      const switchBack = options.approval
        ? { approvalId: options.approval, executor: await withDatabase(({ pool }) => requireOfficer(pool, options.tokenFile, ['administrator'], 'switching back'), { site: readTopology(config).primary }) }
        : undefined;
      const log = options.json ? undefined : (l: string) => console.log(l);
      const result = await withDrillLock(config, 'failback', commandLineStarter(), () => runFailback(config, { ...(switchBack ? { switchBack } : {}), ...(log ? { log } : {}) }), log);
      await report(result, options.json);
    });
}
