import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FleetError, eui64PrefixRange, parseEui64Range } from '@fleetpki/core';
import { AccessAdministration, DualControl, ManufacturerRegistry, assertManufacturerRegistered, assertNoAdministrator, issueApiToken, postgresInstallationStore, recordBootstrap, recoverAdministrator, ROLES, type Principal, type Role } from '@fleetpki/ca';
import { parseDevicePublicKey } from '@fleetpki/x509';
import { hostActor, requireOfficer, withDatabase } from '../context.js';

const adminTokenOption = ['--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)"] as const;

/** An administrator's registry of manufacturers: every change is that person's, in the audit log. */
async function asAdministrator<T>(tokenFile: string | undefined, what: string, run: (registry: ManufacturerRegistry, admin: Principal) => Promise<T>): Promise<T> {
  return withDatabase(async ({ config, pool }) => {
    const admin = await requireOfficer(pool, tokenFile, ['administrator'], what);
    return run(new ManufacturerRegistry(pool, config.site), admin);
  });
}

export function registerTokenCommands(program: Command): void {
  const manufacturers = program.command('manufacturers').description("meter makers: their keys and EUI-64 ranges decide whose device ids and keys are trusted (an administrator's)");
  manufacturers
    .command('set-key <id> <publicKeyPem>')
    .description("register the manufacturer's manifest-signing key (P-256 public key, PEM): raw public keys are accepted only from manifests, or online statements, it signed")
    .option(...adminTokenOption)
    .action(async (id: string, file: string, options: { tokenFile?: string }) => {
      const spki = parseDevicePublicKey(readFileSync(file, 'utf8')).spki;
      await asAdministrator(options.tokenFile, "registering a manufacturer's manifest-signing key", (registry, admin) => registry.setManifestKey(admin, id, spki));
      console.log(`manifest-signing key of ${id} registered`);
    });
  manufacturers
    .command('set-transport-key <id> <publicKeyPem>')
    .description("register the factory's P-256 key-agreement key: device-key bundles for it are wrapped under a key agreed with it")
    .option(...adminTokenOption)
    .action(async (id: string, file: string, options: { tokenFile?: string }) => {
      const spki = parseDevicePublicKey(readFileSync(file, 'utf8')).spki;
      await asAdministrator(options.tokenFile, "registering a manufacturer's transport key", (registry, admin) => registry.setTransportKey(admin, id, spki));
      console.log(`transport key of ${id} registered`);
    });
  manufacturers
    .command('add <id> <name>')
    .description('register (or rename) a manufacturer; id is lower-case letters, digits and dashes')
    .option(...adminTokenOption)
    .action(async (id: string, name: string, options: { tokenFile?: string }) => {
      await asAdministrator(options.tokenFile, 'registering a manufacturer', (registry, admin) => registry.add(admin, id, name));
      console.log(`manufacturer ${id} (${name}) registered`);
    });
  manufacturers
    .command('add-range <id>')
    .description("give the manufacturer a block of device ids: it enrols only EUI-64s inside its ranges (none: it enrols nothing); ranges of two manufacturers never overlap")
    .option('--prefix <hex>', 'every EUI-64 that starts with it: an OUI (00-1B-C5), an MA-M or MA-S block (1-15 hex digits)')
    .option('--first <eui64>', 'the first EUI-64 of the range (with --last)')
    .option('--last <eui64>', 'the last EUI-64 of the range, included')
    .option(...adminTokenOption)
    .action(async (id: string, options: { prefix?: string; first?: string; last?: string; tokenFile?: string }) => {
      if ((options.prefix !== undefined) === (options.first !== undefined || options.last !== undefined) || (options.first === undefined) !== (options.last === undefined)) {
        throw new FleetError('EUI64_RANGE_INVALID', 'give --prefix, or --first and --last');
      }
      const range = options.prefix !== undefined ? eui64PrefixRange(options.prefix) : parseEui64Range(options.first!, options.last!);
      const outcome = await asAdministrator(options.tokenFile, "registering a manufacturer's EUI-64 range", (registry, admin) => registry.addRange(admin, id, range));
      console.log(`${range.first}..${range.last} ${outcome === 'added' ? 'registered to' : 'was already registered to'} ${id}`);
    });
  manufacturers
    .command('ranges [id]')
    .description("the registered EUI-64 ranges (of one manufacturer, or all)")
    .action(async (id: string | undefined) => {
      await withDatabase(async ({ config, pool }) => {
        for (const r of await new ManufacturerRegistry(pool, config.site).ranges(id)) console.log(`${r.manufacturerId.padEnd(24)} ${r.range.first} ${r.range.last}  (${r.createdBy}, ${r.createdAt.toISOString()})`);
      });
    });
  const tokens = program.command('tokens').description('people and their API tokens');
  tokens
    .command('create')
    .description("create an API token for a person (created when missing), as an administrator; printed once and stored only as a hash. A privileged person (officer, custodian, administrator, auditor), and any further credential of one, needs --approval: an approved person.create or credential.create")
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .requiredOption('--name <name>', 'the person (or factory line) who holds the token')
    .option('--manufacturer <id>', 'the manufacturer a factory token acts for (required for --role factory)')
    .option('--expires-days <days>', 'days until the token expires', (v) => Number(v))
    .option('--approval <id>', 'the approved person.create / credential.create request this executes')
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .option('--quiet', 'print only the token')
    .action(async (options: { role: string; manufacturer?: string; name: string; expiresDays?: number; approval?: string; tokenFile?: string; quiet?: boolean }) => {
      await withDatabase(async ({ config, pool }) => {
        if (!(ROLES as readonly string[]).includes(options.role)) throw new FleetError('ROLE_UNKNOWN', `unknown role "${options.role}"; expected one of ${ROLES.join(', ')}`);
        if (options.manufacturer) await assertManufacturerRegistered(postgresInstallationStore(pool), options.manufacturer);
        const admin = await requireOfficer(pool, options.tokenFile, ['administrator'], 'creating a token');
        const access = new AccessAdministration(pool, config.site, new DualControl(pool, config.site, config.dualControl.approvalTtlMinutes));
        const issued = await access.issueToken(admin, {
          name: options.name,
          role: options.role as Role,
          manufacturerId: options.manufacturer ?? null,
          ...(options.expiresDays !== undefined ? { expiresDays: options.expiresDays } : {}),
          ...(options.approval ? { approvalId: options.approval } : {}),
        });
        console.log(options.quiet ? issued.token : `token (shown once) for ${issued.person.name}${issued.personCreated ? ' (new person)' : ''}: ${issued.token}`);
      });
    });
}

/**
 * Installation and disaster recovery: the two commands that use the database owner's connection to
 * create privileged people without dual control. The host's owner access is the trust boundary here
 * (as it is for the database itself); both refuse unless that is really the situation (no administrator
 * yet; no two administrators able to approve together), neither gives an existing person a credential,
 * and both are in the audit log under the host account that ran them.
 */
export function registerBootstrapCommands(program: Command): void {
  program
    .command('bootstrap')
    .description('installation only: the first two administrators and the key custodians of the installation ceremony (no administrator may exist yet); their tokens go to files in --out (0600)')
    .requiredOption('--admin <name...>', 'two names (the first two administrators)')
    .option('--custodian <name...>', 'the key custodians who run the first key ceremony')
    .requiredOption('--out <dir>', 'where to write <name>.token')
    .action(async (options: { admin: string[]; custodian?: string[]; out: string }) => {
      if (options.admin.length !== 2 || options.admin[0] === options.admin[1]) throw new FleetError('BOOTSTRAP_INVALID', 'give exactly two different --admin names: after this, every privileged person needs two of them');
      await withDatabase(
        async ({ config, pool }) => {
          const installation = postgresInstallationStore(pool);
          await assertNoAdministrator(installation);
          mkdirSync(options.out, { recursive: true, mode: 0o700 });
          const people = [...options.admin.map((name) => ({ name, role: 'administrator' as const })), ...(options.custodian ?? []).map((name) => ({ name, role: 'custodian' as const }))];
          for (const { name, role } of people) {
            const token = await issueApiToken(pool, { site: config.site, actor: `bootstrap:${hostActor()}`, name, role, manufacturerId: null });
            writeFileSync(join(options.out, `${name}.token`), token + '\n', { mode: 0o600 });
          }
          await recordBootstrap(installation, { site: config.site, actor: `bootstrap:${hostActor()}`, administrators: options.admin, custodians: options.custodian ?? [] });
          console.log(`${people.map((p) => `${p.name} (${p.role})`).join(', ')} created; their tokens are in ${options.out} (hand each to its person, then delete)`);
        },
        { owner: true },
      );
    });
  program
    .command('recovery')
    .description("disaster recovery with the database owner's access: a new administrator, only while no two administrators can approve together (never a new token for someone who exists); audited")
    .requiredOption('--admin <name>', 'the new administrator (a name nobody has)')
    .requiredOption('--reason <text>', 'why (goes into the audit log)')
    .requiredOption('--out <file>', 'a new file for the token (0600)')
    .action(async (options: { admin: string; reason: string; out: string }) => {
      // Opened first: a token minted and then lost to an unwritable path would count as a live administrator.
      if (existsSync(options.out)) throw new FleetError('OUT_FILE_EXISTS', `${options.out} exists: give a new file for the token`);
      const out = openSync(options.out, 'wx', 0o600);
      try {
        await withDatabase(
          async ({ config, pool }) => {
            const token = await recoverAdministrator(pool, { site: config.site, actor: `recovery:${hostActor()}`, name: options.admin, reason: options.reason });
            writeFileSync(out, token + '\n');
            console.log(`administrator ${options.admin}: token in ${options.out}; this owner-access recovery is in the audit log`);
          },
          { owner: true },
        );
      } catch (err) {
        rmSync(options.out, { force: true });
        throw err;
      } finally {
        closeSync(out);
      }
    });
}
