import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '@fleetpki/core';
import { runCeremony } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { appendAuditEvents, readSiteStates } from '@fleetpki/store';
import { toPem } from '@fleetpki/x509';
import { hardenSiteKeys, migrateRootToken, openRootKeyStore } from '@fleetpki/sites';
import { requireOfficer, withDatabase } from '../context.js';
import { readRootPin, rootPinOption } from '../custodian-pins.js';

export function registerCeremonyCommands(program: Command): void {
  const ceremony = program.command('ceremony').description('key ceremonies (custodians)');
  rootPinOption(
    ceremony
      .command('init')
      .description("create the CA hierarchy: the root key in the offline root's HSM, device issuing and organisation CA keys in the site's; a re-run checks keys against certificates")
      .option('--out <dir>', 'also write root.pem, issuing.pem, organisation.pem and chain.pem here')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { out?: string; tokenFile?: string; rootPinFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const site = config.sites[config.site];
        const state = (await readSiteStates(pool)).find((s) => s.site === site.id);
        if (!state) throw new FleetError('SITE_STATE_MISSING', `no site_state row for site ${site.id}: run \`pnpm fleetpki db migrate\``);
        if (state.role !== 'active') throw new FleetError('SITE_NOT_ACTIVE', `site ${site.id} is ${state.role}; run the ceremony on the active site`);
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'the key ceremony');
        const rootKeyStore = await openRootKeyStore(config, await readRootPin(config, options.rootPinFile));
        let siteKeyStore: Awaited<ReturnType<typeof openSiteKeyStore>> | undefined;
        try {
          siteKeyStore = await openSiteKeyStore(config, site, { sessions: 1 });
          const result = await runCeremony({ pool, rootKeyStore, siteKeyStore, site: site.id, serialPrefix: state.serialPrefix, actor: `token:${custodian.name}` });
          console.log(result.created ? 'ceremony complete: CA hierarchy created' : 'CA hierarchy already exists; every CA key matches its certificate');
          for (const ca of result.chain) {
            const fingerprint = createHash('sha256').update(ca.certificate).digest('hex').toUpperCase().match(/../g)!.join(':');
            console.log(`\n${ca.id} (${ca.kind}${ca.parentId ? `, issued by ${ca.parentId}` : ', self-signed'})\n  subject: ${ca.subjectDn}\n  key:     ${ca.keyUri}\n  expires: ${ca.notAfter.toISOString()}\n  SHA-256: ${fingerprint}`);
          }
          const pem = (id: string) => toPem(result.chain.find((c) => c.id === id)!.certificate);
          console.log(`\n${pem('fpd1')}${pem('root')}`);
          if (options.out) {
            mkdirSync(options.out, { recursive: true });
            writeFileSync(join(options.out, 'root.pem'), pem('root'));
            writeFileSync(join(options.out, 'issuing.pem'), pem('fpd1'));
            writeFileSync(join(options.out, 'organisation.pem'), pem('org1'));
            writeFileSync(join(options.out, 'chain.pem'), pem('fpd1') + pem('root'));
            console.log(`wrote root.pem, issuing.pem, organisation.pem, chain.pem to ${options.out}`);
          }
        } finally {
          await siteKeyStore?.close();
          await rootKeyStore.close();
        }
      });
    });
  ceremony
    .command('harden')
    .description('migration of an older installation: every key the token would wrap under any key is made non-extractable in place, SO PINs go to the custodians; then `hsm check`')
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'hardening the HSM keys');
        const report = await hardenSiteKeys(config, (line) => console.log(line));
        await appendAuditEvents(pool, [{ site: config.site, actor: `token:${custodian.name}`, action: 'hsm.harden', subject: config.sites[config.site].hsmTokenLabel, details: { restricted: report.restricted, movedPinFiles: report.movedPinFiles.length } }]);
        if (report.restricted.length === 0) console.log('no key was wrappable under any key; nothing to restrict');
        else console.log(`${report.restricted.length} key(s) made non-extractable: they cannot be cloned any more (rotate them to clone again: device master keys with \`keys master create\`; CA keys need a new CA generation, infra/README.md)`);
      });
    });
  ceremony
    .command('migrate-root')
    .description("migration of an older installation: move the root token out of site A's HSM into the root's own, with new PINs for the custodians; stop site A's services first")
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'moving the root token');
        const outcome = await migrateRootToken(config, (line) => console.log(line));
        if (outcome === 'moved') await appendAuditEvents(pool, [{ site: config.site, actor: `token:${custodian.name}`, action: 'hsm.migrate-root', subject: config.rootTokenLabel, details: { to: config.rootHsm.dir } }]);
        else console.log(`the root token ${config.rootTokenLabel} is not in site a's HSM: nothing to do`);
      });
    });
}
