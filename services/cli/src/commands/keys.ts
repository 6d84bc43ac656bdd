import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DEVICE_KEY_ROLES, DeviceKeyService, auditActor, hasActiveMasterKey, postgresCustodyStore } from '@fleetpki/ca';
import { factoryTransportKek, unwrapDeviceKey, type DeviceKeyBundleHeader, type DeviceKeyLine } from '@fleetpki/client';
import { FleetError, eui64ToBytes, parseEui64 } from '@fleetpki/core';
import { openSiteKeyStore, type DeviceKeyRole } from '@fleetpki/hsm';
import { executeApproved, requireOfficer, withDatabase } from '../context.js';

function parseRoles(text: string): DeviceKeyRole[] {
  const roles = text.split(',').map((r) => r.trim());
  for (const r of roles) if (!DEVICE_KEY_ROLES.includes(r as DeviceKeyRole)) throw new FleetError('DEVICE_KEY_ROLE_INVALID', `unknown device key role "${r}"; use ${DEVICE_KEY_ROLES.join(', ')}`);
  return roles as DeviceKeyRole[];
}

export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('hybrid keys: per-device symmetric keys diversified and wrapped in the HSM');
  keys
    .command('master')
    .description('master keys')
    .command('create')
    .description('generate a new master key version in the HSM for a role (earlier versions stay for existing devices)')
    .requiredOption('--role <role>', 'mac or enc')
    .option('--approval <id>', 'an approved master-key.rotate request: needed when the role already has an active key (dual control)')
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN); for a rotation the executing custodian's (the requester or the approver)")
    .action(async (options: { role: string; approval?: string; tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const role = parseRoles(options.role)[0]!;
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'creating a device master key');
        const store = postgresCustodyStore(pool);
        const rotation = await hasActiveMasterKey(store, role);
        if (rotation && !options.approval) {
          throw new FleetError('DUAL_CONTROL_REQUIRED', `a ${role} master key is active: rotating it needs a second custodian. Request it: pnpm fleetpki approvals request master-key.rotate --role ${role} --token-file <yours>; once another custodian approved it, run this again with --approval <id> --token-file <yours>`);
        }
        const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
        try {
          const service = new DeviceKeyService(store, keyStore, config.site);
          const created = rotation
            ? await executeApproved(config, pool, options.approval!, options.tokenFile, 'master-key.rotate', async (payload, actor) => {
                if (payload.role !== role) throw new FleetError('APPROVAL_PAYLOAD_MISMATCH', `approval ${options.approval} is for the ${String(payload.role)} master key, not ${role}`);
                return service.createMasterKey(role, actor);
              })
            : await service.createMasterKey(role, auditActor(custodian));
          console.log(`master key ${created.label}: role ${created.role}, version ${created.version}, in token ${keyStore.tokenLabel}`);
        } finally {
          await keyStore.close();
        }
      });
    });
  keys
    .command('issue')
    .description("diversify and wrap device keys of a manufacturer's own devices for its registered transport key, as an administrator; writes an NDJSON bundle")
    .requiredOption('--manufacturer <id>', 'the factory')
    .requiredOption('--devices <file>', 'EUI-64s, one per line')
    .option('--roles <roles>', 'comma-separated key roles', 'mac,enc')
    .option('--context <name>', 'bundle name bound into the transport key (e.g. the batch id)')
    .requiredOption('--out <file>', 'the bundle')
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { manufacturer: string; devices: string; roles: string; context?: string; out: string; tokenFile?: string }) => {
      const eui64s = readFileSync(options.devices, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
        .map((l, i) => {
          try {
            return eui64ToBytes(parseEui64(l));
          } catch (err) {
            throw new FleetError('EUI64_INVALID', `${options.devices} line ${i + 1}: ${(err as Error).message}`);
          }
        });
      await withDatabase(async ({ config, pool }) => {
        const admin = await requireOfficer(pool, options.tokenFile, ['administrator'], 'issuing device keys');
        const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
        try {
          // Only the manufacturer's own devices (its EUI-64 ranges): refused before anything is wrapped.
          const bundle = await new DeviceKeyService(postgresCustodyStore(pool), keyStore, config.site).issueBundle({ manufacturerId: options.manufacturer, eui64s, roles: parseRoles(options.roles), ...(options.context ? { context: options.context } : {}), actor: auditActor(admin) });
          writeFileSync(options.out, [bundle.header, ...bundle.keys].map((l) => JSON.stringify(l)).join('\n') + '\n');
          console.log(`${bundle.keys.length} device keys for ${eui64s.length} devices wrapped for ${options.manufacturer} in ${options.out}`);
        } finally {
          await keyStore.close();
        }
      });
    });
  keys
    .command('unwrap')
    .description("the factory side (reference): open a bundle with the factory's private key, check every key's KCV")
    .requiredOption('--bundle <file>', 'the NDJSON bundle')
    .requiredOption('--factory-key <pem>', "the factory's P-256 private key (PEM)")
    .option('--out <file>', 'write eui64,role,version,key-hex lines here (otherwise only checked)')
    .action((options: { bundle: string; factoryKey: string; out?: string }) => {
      const lines = readFileSync(options.bundle, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as DeviceKeyBundleHeader | DeviceKeyLine);
      const header = lines[0];
      if (header?.type !== 'device-key-transport' || header.format !== 'fleetpki-device-keys/1') throw new FleetError('BUNDLE_INVALID', `${options.bundle}: the first line is not a fleetpki-device-keys/1 header`);
      const kek = factoryTransportKek(header, createPrivateKey(readFileSync(options.factoryKey, 'utf8')));
      const out: string[] = [];
      for (const line of lines.slice(1) as DeviceKeyLine[]) out.push(`${line.eui64},${line.role},${line.version},${unwrapDeviceKey(kek, line).toString('hex')}`);
      if (options.out) writeFileSync(options.out, out.join('\n') + '\n', { mode: 0o600 });
      console.log(`${out.length} device keys unwrapped; every key check value matches`);
    });
}
