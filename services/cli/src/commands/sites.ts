import type { Command } from 'commander';
import { assertTwoPeopleTogether, auditActor } from '@fleetpki/ca';
import { FleetError, SITE_IDS, loadConfig, type SiteId } from '@fleetpki/core';
import { consensusStatus, failoverTo, formatStatus, readTopology, sitesDown, sitesStatus, sitesUp, switchover } from '@fleetpki/sites';
import { appendAuditEvents, withTransaction } from '@fleetpki/store';
import { executeApproved, requireOfficer, withDatabase } from '../context.js';

export function registerSitesCommands(program: Command): void {
  const sites = program.command('sites').description('the local two-site topology: SoftHSM tokens, PostgreSQL primary/standby, Redis');
  sites
    .command('up')
    .description('create (first run) and start both sites; a no-op for parts already running')
    .action(async () => {
      const config = loadConfig();
      await sitesUp(config, (line) => console.log(line));
    });
  sites
    .command('down')
    .description('stop every process of both sites; data is kept')
    .action(async () => {
      await sitesDown(loadConfig(), (line) => console.log(line));
    });
  sites
    .command('status')
    .description('each part of each site: up/down, role, replication lag, etcd, the agents, who leads, whether writes are blocked')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const [statuses, consensus] = await Promise.all([sitesStatus(config), consensusStatus(config)]);
      console.log(options.json ? JSON.stringify({ sites: statuses, consensus }, null, 2) : formatStatus(statuses, consensus));
    });
  sites
    .command('switchover')
    .description('planned: the active site hands the CA over to its synchronous standby (zero loss) and rejoins as its standby. Dual control: an approved site.switchover request')
    .requiredOption('--approval <id>', 'the approved site.switchover request (pnpm fleetpki approvals request site.switchover)')
    .option('--token-file <file>', "the executing administrator's API token (the requester or the approver)")
    .action(async (options: { approval: string; tokenFile?: string }) => {
      const config = loadConfig();
      const result = await withDatabase(({ pool }) => executeApproved(config, pool, options.approval, options.tokenFile, 'site.switchover', (_payload, actor) => switchover(config, actor, (l) => console.log(l))), { site: readTopology(config).primary });
      console.log(`site ${result.to} is the active CA site (epoch ${result.epoch}); site ${result.from} is its synchronous standby`);
    });
  sites
    .command('failover')
    .description('unplanned: make a site the active CA site now. Refused while the active site holds its lease in etcd, unless forced by two administrators together (the lease is revoked; its processes stop within a lease time)')
    .requiredOption('--to <site>', 'the site to take over (a or b)')
    .option('--force', 'revoke the active site\'s lease (needs --token-file and --second-token-file: two administrators)')
    .option('--token-file <file>', "an administrator's API token")
    .option('--second-token-file <file>', "a second administrator's API token (another person)")
    .action(async (options: { to: string; force?: boolean; tokenFile?: string; secondTokenFile?: string }) => {
      if (!SITE_IDS.includes(options.to as SiteId)) throw new FleetError('SITE_UNKNOWN', `--to must be one of ${SITE_IDS.join(', ')}, got "${options.to}"`);
      const config = loadConfig({ ...process.env, FLEETPKI_SITE: options.to });
      const to = config.sites[options.to as SiteId];
      // The credentials are checked on the site taking over (its standby database answers reads).
      const people = options.force
        ? await withDatabase(
            async ({ pool }) => {
              if (!options.secondTokenFile) throw new FleetError('DUAL_CONTROL_REQUIRED', 'a forced failover takes two administrators: --token-file and --second-token-file');
              const first = await requireOfficer(pool, options.tokenFile, ['administrator'], 'a forced failover');
              const second = await requireOfficer(pool, options.secondTokenFile, ['administrator'], 'a forced failover');
              await assertTwoPeopleTogether(pool, first, second, ['administrator'], 'a forced failover');
              return [first, second] as const;
            },
            { site: to.id },
          )
        : undefined;
      const result = await failoverTo(config, to, { force: options.force === true, log: (l) => console.log(l) });
      await withDatabase(
        ({ pool }) =>
          withTransaction(pool, async (client) => {
            // Recorded on the new active site even while its synchronous standby is still away.
            await client.query('SET LOCAL synchronous_commit = local');
            await appendAuditEvents(client, [
              {
                site: to.id,
                actor: people ? people.map(auditActor).join(' + ') : (process.env.FLEETPKI_ACTOR ?? 'cli'),
                action: 'site.failover',
                subject: to.id,
                details: { epoch: result.epoch, forced: options.force === true, revokedLeaseOf: result.revokedLeaseOf ?? null },
              },
            ]);
          }),
        { site: to.id },
      );
      console.log(`site ${to.id} is the active CA site (epoch ${result.epoch})${result.revokedLeaseOf ? `; site ${result.revokedLeaseOf}'s lease was revoked` : ''}`);
    });
}
