import { createReadStream } from 'node:fs';
import type { Command } from 'commander';
import { FleetError, isFleetError } from '@fleetpki/core';
import type { ApprovalView, RevocationView } from '@fleetpki/client';
import { readRevocationList } from '@fleetpki/manifest';
import { apiClient, withApiOptions, type ApiOptions } from '../api.js';

export function registerRevokeCommands(program: Command): void {
  withApiOptions(program.command('revoke'))
    .description('revoke certificates (revocation officers): by serial, device, list file or batch')
    .option('--serial <hex...>', 'certificate serial(s)')
    .option('--device <eui64...>', 'every certificate of these device(s)')
    .option('--file <file>', 'a list: one serial or EUI-64 a line (plain, CSV first column, or NDJSON {"serial"|"eui64"})')
    .option('--batch <id>', 'every certificate of a factory batch')
    .option('--reason <reason>', 'RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, affiliationChanged, ... (default unspecified)')
    .option('--json', 'print the outcome as JSON')
    .action(async (options: ApiOptions & { serial?: string[]; device?: string[]; file?: string; batch?: string; reason?: string; json?: boolean }) => {
      const given = [options.serial, options.device, options.file, options.batch].filter((x) => x !== undefined).length;
      if (given !== 1) throw new FleetError('ARGUMENT_INVALID', 'give exactly one of --serial, --device, --file, --batch');
      const client = apiClient(options);
      const targets: Parameters<typeof client.revoke>[0][] = [];
      if (options.file) {
        const list = await readRevocationList(createReadStream(options.file));
        if (list.serials.length) targets.push({ serials: list.serials });
        if (list.devices.length) targets.push({ devices: list.devices });
        if (targets.length === 0) throw new FleetError('LIST_EMPTY', `${options.file} names no serial or device`);
      } else if (options.serial) targets.push({ serials: options.serial });
      else if (options.device) targets.push({ devices: options.device });
      else targets.push({ batch: options.batch! });
      const outcomes: RevocationView[] = [];
      for (const target of targets) {
        try {
          outcomes.push(await client.revoke(target, options.reason));
        } catch (err) {
          // Above the dual-control threshold: the request waits for a second officer.
          const approval = isFleetError(err, 'APPROVAL_REQUIRED') ? (err.details?.approval as ApprovalView) : undefined;
          if (!approval) throw err;
          if (options.json) console.log(JSON.stringify({ approvalRequired: true, approval }));
          else {
            console.log(`${(err as Error).message}; it expires ${approval.expiresAt}`);
            console.log(`  second officer: pnpm fleetpki approvals approve ${approval.id} --token-file <their token>`);
            console.log(`  then:           pnpm fleetpki approvals execute ${approval.id} --token-file <yours>`);
          }
        }
      }
      for (const o of outcomes) {
        if (options.json) console.log(JSON.stringify(o));
        else {
          console.log(`revoked ${o.revoked} certificates (reason ${o.reason}); ${o.alreadyRevoked} were already revoked; ${o.notFound} not found${o.notFound ? `: ${o.notFoundFirst.slice(0, 10).join(', ')}${o.notFound > 10 ? ', ...' : ''}` : ''}`);
          if (o.crlShards.length) console.log(`CRL shards to republish: ${o.crlShards.length} (${o.crlShards.slice(0, 16).join(', ')}${o.crlShards.length > 16 ? ', ...' : ''}); OCSP reports it within seconds`);
        }
      }
    });
}
