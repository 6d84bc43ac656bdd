import type { Command } from 'commander';
import { assertTwoPeopleTogether, auditActor, postgresSiteStore, recordSiteOperation, type Principal } from '@fleetpki/ca';
import { FleetError, SITE_IDS, loadConfig, type FleetConfig, type SiteId } from '@fleetpki/core';
import { backupStatus, consensusStatus, failoverTo, formatStatus, ensureLocalPrometheus, placeSiteOrder, protect, readTopology, rotateLogs, sitesDown, sitesStatus, sitesUp, switchover } from '@fleetpki/sites';
import { executeApproved, hostActor, requireOfficer, withDatabase } from '../context.js';

export function registerSitesCommands(program: Command): void {
  const sites = program.command('sites').description('the local two-site topology: SoftHSM tokens, PostgreSQL primary/standby, Redis');
  sites
    .command('up')
    .description('create (first run) and start both sites; a no-op for parts already running')
    .option('--prometheus', "also start Debian's Prometheus on 127.0.0.1:19090, scraping every process of both sites with the alert rules (docs/operations.md)")
    .action(async (options: { prometheus?: boolean }) => {
      const config = loadConfig();
      await sitesUp(config, (line) => console.log(line));
      if (options.prometheus) {
        const { state, url } = ensureLocalPrometheus(config);
        console.log(`prometheus: ${state} on ${url} (graphs: ${url}/graph, alerts: ${url}/alerts)`);
      }
    });
  sites
    .command('down')
    .description('stop every process of both sites; data is kept')
    .action(async () => {
      await sitesDown(loadConfig(), (line) => console.log(line));
    });
  sites
    .command('status')
    .description('each part of each site: up/down, role, replication lag, etcd, the agents, who leads, whether writes are blocked; the backups and a check of the WAL archive (pgbackrest check)')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const [statuses, consensus, backup] = await Promise.all([sitesStatus(config), consensusStatus(config), backupStatus(config)]);
      console.log(options.json ? JSON.stringify({ sites: statuses, consensus, backup }, null, 2) : formatStatus(statuses, consensus, backup));
      if (!backup.check.ok) process.exitCode = 1;
    });
  sites
    .command('rotate-logs')
    .description("rotate the local simulation's log files over 50 MB (agents, etcd, Redis, PostgreSQL, pgBackRest; copytruncate, 7 kept, compressed): run it from cron. Production units log to the journal")
    .option('--force', 'rotate every file now, whatever its size')
    .action(async (options: { force?: boolean }) => {
      const report = await rotateLogs(loadConfig(), { force: options.force === true });
      const rotated = report.split('\n').filter((l) => /^renaming|^copying|^truncating/.test(l));
      console.log(rotated.length ? rotated.join('\n') : 'no log file needed rotating');
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
      const people = options.force ? await twoAdministrators(config, to.id, options.tokenFile, options.secondTokenFile, 'a forced failover') : undefined;
      const leader = people ? (await consensusStatus(config)).leader : undefined;
      let result: { epoch: number; revokedLeaseOf: SiteId | undefined };
      if (people && leader && leader.site !== to.id) {
        // Only `to`'s agent may revoke the leader's lease (etcd authentication), and only on an order
        // recorded in the database: on the primary, whence it replicates to `to`'s standby.
        const order = await withDatabase(({ pool }) => placeSiteOrder(config, pool, { action: 'site.failover', payload: {}, to: to.id, proofs: [people[0].proof, people[1].proof] }, { log: (l) => console.log(l) }), { site: leader.site });
        result = { epoch: Number(order.done.epoch), revokedLeaseOf: (order.done.revokedLeaseOf as SiteId | null) ?? undefined };
      } else result = await failoverTo(config, to, { force: false, log: (l) => console.log(l) });
      await auditLocally(config, to.id, people ? people.map(auditActor).join(' + ') : hostActor(), 'site.failover', { epoch: result.epoch, forced: options.force === true, revokedLeaseOf: result.revokedLeaseOf ?? null });
      console.log(`site ${to.id} is the active CA site (epoch ${result.epoch})${result.revokedLeaseOf ? `; site ${result.revokedLeaseOf}'s lease was revoked` : ''}`);
    });
  sites
    .command('unprotect')
    .description('run the active site without its synchronous standby (asynchronous): writes stop waiting for a standby that is gone, RPO 0 is given up and the standby is no longer promoted. Two administrators together; undone by `sites protect`')
    .requiredOption('--reason <text>', 'why (recorded in the audit log)')
    .option('--token-file <file>', "an administrator's API token")
    .option('--second-token-file <file>', "a second administrator's API token (another person)")
    .action(async (options: { reason: string; tokenFile?: string; secondTokenFile?: string }) => {
      const config = loadConfig();
      const site = readTopology(config).primary;
      const people = await twoAdministrators(config, site, options.tokenFile, options.secondTokenFile, 'running unprotected');
      // The leader's agent carries the order out: with none, say so now rather than after the order's wait.
      if (!(await consensusStatus(config)).leader) throw new FleetError('SITE_NO_LEADER', 'no site leads the CA (etcd); nothing to unprotect');
      const actor = people.map(auditActor).join(' + ');
      // The leader's agent writes `unprotected` (nobody else may: etcd authentication), on this recorded order.
      const order = await withDatabase(({ pool }) => placeSiteOrder(config, pool, { action: 'site.unprotect', payload: { reason: options.reason }, proofs: [people[0].proof, people[1].proof] }, { log: (l) => console.log(l) }), { site });
      const result = { site: order.done.site as SiteId, since: order.done.since as string };
      await auditLocally(config, result.site, actor, 'site.unprotect', { since: result.since, reason: options.reason, order: order.id });
      console.log(`site ${result.site} runs UNPROTECTED since ${result.since}: acknowledged writes may be lost if it fails; \`pnpm fleetpki sites protect\` undoes this`);
    });
  sites
    .command('protect')
    .description("undo `sites unprotect`: the active site's writes wait for its synchronous standby again. One administrator; two when no site leads (the standby, which may lack writes acknowledged meanwhile, becomes eligible)")
    .option('--token-file <file>', "an administrator's API token")
    .option('--second-token-file <file>', "a second administrator's API token, needed when no site leads")
    .action(async (options: { tokenFile?: string; secondTokenFile?: string }) => {
      const config = loadConfig();
      const consensus = await consensusStatus(config);
      const site = consensus.leader?.site ?? readTopology(config).primary;
      const people = consensus.leader
        ? [await withDatabase(({ pool }) => requireOfficer(pool, options.tokenFile, ['administrator'], 'restoring protection'), { site })]
        : await twoAdministrators(config, site, options.tokenFile, options.secondTokenFile, 'restoring protection with no site leading');
      if (!consensus.unprotected) {
        console.log('already protected: the primary waits for its synchronous standby');
        return;
      }
      let result: { site: SiteId | undefined; wasUnprotectedSince: string | undefined };
      if (consensus.leader) {
        // The leader's agent restores it, on a recorded order (one administrator: the safe direction).
        const order = await withDatabase(({ pool }) => placeSiteOrder(config, pool, { action: 'site.protect', payload: {}, proofs: [people[0]!.proof] }, { log: (l) => console.log(l) }), { site });
        result = { site: order.done.site as SiteId | undefined, wasUnprotectedSince: order.done.wasUnprotectedSince as string | undefined };
      } else {
        // Nobody leads: no primary can record an order and no agent leads to carry it out. Two
        // administrators checked above; the key is cleared with an agent's etcd credential, which only
        // the host account holding the state folder can read (the owner's boundary, as for recovery).
        result = await protect(config, (l) => console.log(l));
      }
      if (!result.wasUnprotectedSince) {
        console.log('already protected: the primary waits for its synchronous standby');
        return;
      }
      if (result.site) await auditLocally(config, result.site, people.map(auditActor).join(' + '), 'site.protect', { unprotectedSince: result.wasUnprotectedSince });
      console.log(`protected again (unprotected since ${result.wasUnprotectedSince}): writes wait for the synchronous standby`);
    });
}

/** Two administrators presenting their tokens together (read-only checks: they work while writes are blocked). */
async function twoAdministrators(config: FleetConfig, site: SiteId, tokenFile: string | undefined, secondTokenFile: string | undefined, what: string): Promise<readonly [Principal, Principal]> {
  return withDatabase(
    async ({ pool }) => {
      if (!secondTokenFile) throw new FleetError('DUAL_CONTROL_REQUIRED', `${what} takes two administrators: --token-file and --second-token-file`);
      const first = await requireOfficer(pool, tokenFile, ['administrator'], what);
      const second = await requireOfficer(pool, secondTokenFile, ['administrator'], what);
      await assertTwoPeopleTogether(pool, first, second, ['administrator'], what);
      return [first, second] as const;
    },
    { site },
  );
}

/** An audit event on `site` that commits locally: it is recorded even while the synchronous standby is away. */
async function auditLocally(config: FleetConfig, site: SiteId, actor: string, action: string, details: Record<string, unknown>): Promise<void> {
  await withDatabase(({ pool }) => recordSiteOperation(postgresSiteStore(pool), site, actor, action, details), { site });
}
