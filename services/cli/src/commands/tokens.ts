import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FleetError } from '@fleetpki/core';
import { issueApiToken, ROLES, type Role } from '@fleetpki/ca';
import { manufacturerExists, upsertManufacturer, appendAuditEvents, setManufacturerManifestKey, setManufacturerTransportKey } from '@fleetpki/store';
import { parseDevicePublicKey } from '@fleetpki/x509';
import { cliActor, withDatabase } from '../context.js';

export function registerTokenCommands(program: Command): void {
  const manufacturers = program.command('manufacturers').description('meter makers');
  manufacturers
    .command('set-key <id> <publicKeyPem>')
    .description("register the manufacturer's manifest-signing key (P-256 public key, PEM): raw public keys are accepted only from manifests it signed")
    .action(async (id: string, file: string) => {
      await withDatabase(async ({ config, pool }) => {
        const spki = parseDevicePublicKey(readFileSync(file, 'utf8')).spki;
        if (!(await setManufacturerManifestKey(pool, id, spki))) throw new FleetError('MANUFACTURER_UNKNOWN', `manufacturer "${id}" is not registered`);
        await appendAuditEvents(pool, [{ site: config.site, actor: cliActor(), action: 'manufacturer.manifest-key', subject: id, details: { spkiSha256: createHash('sha256').update(spki).digest('hex') } }]);
        console.log(`manifest-signing key of ${id} registered`);
      });
    });
  manufacturers
    .command('set-transport-key <id> <publicKeyPem>')
    .description("register the factory's P-256 key-agreement key: device-key bundles for it are wrapped under a key agreed with it")
    .action(async (id: string, file: string) => {
      await withDatabase(async ({ config, pool }) => {
        const spki = parseDevicePublicKey(readFileSync(file, 'utf8')).spki;
        if (!(await setManufacturerTransportKey(pool, id, spki))) throw new FleetError('MANUFACTURER_UNKNOWN', `manufacturer "${id}" is not registered`);
        await appendAuditEvents(pool, [{ site: config.site, actor: cliActor(), action: 'manufacturer.transport-key', subject: id, details: { spkiSha256: createHash('sha256').update(spki).digest('hex') } }]);
        console.log(`transport key of ${id} registered`);
      });
    });
  manufacturers
    .command('add <id> <name>')
    .description('register (or rename) a manufacturer; id is lower-case letters, digits and dashes')
    .action(async (id: string, name: string) => {
      await withDatabase(async ({ config, pool }) => {
        if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(id)) throw new FleetError('MANUFACTURER_ID_INVALID', `manufacturer id "${id}" must be 1-63 lower-case letters, digits or dashes`);
        await upsertManufacturer(pool, id, name);
        await appendAuditEvents(pool, [{ site: config.site, actor: cliActor(), action: 'manufacturer.upsert', subject: id, details: { name } }]);
        console.log(`manufacturer ${id} (${name}) registered`);
      });
    });
  program
    .command('tokens')
    .description('API tokens')
    .command('create')
    .description('create an API token; it is printed once and stored only as a hash')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--manufacturer <id>', 'the manufacturer a factory token acts for (required for --role factory)')
    .option('--name <name>', 'who or what holds the token', 'unnamed')
    .option('--expires-days <days>', 'days until the token expires', (v) => Number(v))
    .option('--quiet', 'print only the token')
    .action(async (options: { role: string; manufacturer?: string; name: string; expiresDays?: number; quiet?: boolean }) => {
      await withDatabase(async ({ config, pool }) => {
        if (!(ROLES as readonly string[]).includes(options.role)) throw new FleetError('ROLE_UNKNOWN', `unknown role "${options.role}"; expected one of ${ROLES.join(', ')}`);
        if (options.manufacturer && !(await manufacturerExists(pool, options.manufacturer))) {
          throw new FleetError('MANUFACTURER_UNKNOWN', `manufacturer "${options.manufacturer}" is not registered (pnpm fleetpki manufacturers add ...)`);
        }
        const token = await issueApiToken(pool, {
          site: config.site,
          actor: cliActor(),
          name: options.name,
          role: options.role as Role,
          manufacturerId: options.manufacturer ?? null,
          ...(options.expiresDays !== undefined ? { expiresDays: options.expiresDays } : {}),
        });
        console.log(options.quiet ? token : `token (shown once): ${token}`);
      });
    });
}
