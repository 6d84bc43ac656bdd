import type { Command } from 'commander';
import type { ApprovalView } from '@fleetpki/client';
import { apiClient, withApiOptions, type ApiOptions } from '../api.js';

function show(a: ApprovalView): string {
  const who = [`requested by ${a.requestedBy} (${a.requestedWith})`, ...(a.approvedBy ? [`approved by ${a.approvedBy} (${a.approvedWith})`] : []), ...(a.executedBy ? [`executed by ${a.executedBy} (${a.executedWith})`] : [])];
  return `${a.id}  ${a.status.padEnd(8)} ${a.action.padEnd(17)} ${a.summary}  (${who.join(', ')}; expires ${a.expiresAt})`;
}

/** Dual control from the command line: every call is made with the officer's own API token. */
export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('dual control: request, approve (a second, distinct officer) and execute dangerous operations');
  withApiOptions(approvals.command('list')).description('open and recent requests').action(async (options: ApiOptions) => {
    for (const a of await apiClient(options).approvals()) console.log(show(a));
  });
  withApiOptions(approvals.command('show <id>')).description('one request, with its outcome').action(async (id: string, options: ApiOptions) => {
    console.log(JSON.stringify(await apiClient(options).approval(id), null, 2));
  });
  withApiOptions(approvals.command('request <action>'))
    .description('request ca.revoke (--ca), master-key.rotate (--role), site.switchover, drill.failover (test deployments: POST /v1/drills), person.create (--name --role), person.rescope (--name --role), credential.create (--name), ca.root-rollover (--ca <new root id> --name <its common name>) or ca.root-custody; bulk revocations are requested by `revoke` itself')
    .option('--ca <id>', 'ca.revoke: the CA to revoke; ca.root-rollover: the new root\'s id')
    .option('--role <role>', 'master-key.rotate: the key role (mac or enc); person.create, person.rescope: the person\'s role')
    .option('--name <name>', 'person.create, person.rescope, credential.create: the person; ca.root-rollover: the new root\'s common name')
    .option('--reason <reason>', 'for ca.revoke: RFC 5280 reason (default keyCompromise)')
    .action(async (action: 'ca.revoke' | 'master-key.rotate' | 'site.switchover' | 'drill.failover' | 'person.create' | 'person.rescope' | 'credential.create' | 'ca.root-rollover' | 'ca.root-custody', options: ApiOptions & { ca?: string; role?: string; reason?: string; name?: string }) => {
      const a = await apiClient(options).requestApproval({ action, ...(options.ca ? { caId: options.ca } : {}), ...(options.role ? { role: options.role } : {}), ...(options.reason ? { reason: options.reason } : {}), ...(options.name ? { name: options.name } : {}) });
      console.log(show(a));
      console.log(`a second officer approves with: pnpm fleetpki approvals approve ${a.id} --token-file <their token>`);
    });
  withApiOptions(approvals.command('approve <id>')).description("approve another officer's request").action(async (id: string, options: ApiOptions) => {
    console.log(show(await apiClient(options).approve(id)));
  });
  withApiOptions(approvals.command('execute <id>')).description('run an approved bulk revocation or CA revocation (once)').action(async (id: string, options: ApiOptions) => {
    const a = await apiClient(options).executeApproval(id);
    console.log(show(a));
    if (a.outcome) console.log(JSON.stringify(a.outcome));
  });
}
