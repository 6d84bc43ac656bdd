import type { Command } from 'commander';
import { CmpSharedSecrets, auditActor } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { requireOfficer, withDatabase } from '../context.js';

/** `fleetpki cmp secret`: a factory's CMP reference and shared secret (password-based MAC, first contact). */
export function registerCmpCommands(program: Command): void {
  const cmp = program.command('cmp').description('CMP (RFC 9483) enrolment: factories\' MAC references');
  cmp
    .command('secret')
    .description("issue a factory's CMP reference and shared secret (again: a new secret, the old one stops working), as an administrator")
    .requiredOption('--reference <ref>', 'what the factory sends as senderKID (openssl cmp -ref)')
    .requiredOption('--manufacturer <id>', 'the manufacturer it enrols for')
    .option('--token-file <file>', "the administrator's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { reference: string; manufacturer: string; tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const admin = await requireOfficer(pool, options.tokenFile, ['administrator'], 'issuing a CMP secret');
        const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
        try {
          const issued = await new CmpSharedSecrets(pool, keyStore, config.site).issue(options.reference, options.manufacturer, auditActor(admin));
          console.log(`CMP reference ${issued.reference} (version ${issued.version}) for ${options.manufacturer}; shown once, give it to the factory:`);
          console.log(issued.secret);
          console.log(`openssl cmp -server <host>:<port> -path .well-known/cmp -ref ${issued.reference} -secret pass:<secret> ...`);
        } finally {
          await keyStore.close();
        }
      });
    });
}
