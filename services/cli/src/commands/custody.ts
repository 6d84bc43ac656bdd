import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { createKeyCustody, postgresCustodyStore, restoreKeysFromShares, auditActor } from '@fleetpki/ca';
import { FleetError } from '@fleetpki/core';
import { openSiteKeyStore, readPin } from '@fleetpki/hsm';
import { wrapSiteKeysForCustody } from '@fleetpki/sites';
import { requireOfficer, withDatabase } from '../context.js';
import { readSoPin, soPinOption } from '../custodian-pins.js';
import { readShares } from '../custodian-shares.js';

export function registerCustodyCommands(program: Command): void {
  const custody = program.command('custody').description('key custody: clone CA keys into the standby HSM under an M-of-N key-encryption key');
  soPinOption(
    custody
      .command('create')
      .description("on the active site: the token's security officer puts a trusted key-encryption key in, the CA and master keys are wrapped under it, it is split into custodian shares and destroyed")
      .requiredOption('--custodians <n>', 'number of custodians (shares)', Number)
      .requiredOption('--threshold <m>', 'shares needed to restore', Number)
      .requiredOption('--out <dir>', 'where to write custodian-N.share (hand each to its custodian, then delete)')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { custodians: number; threshold: number; out: string; tokenFile?: string; soPinFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'a custody ceremony');
        const store = postgresCustodyStore(pool);
        if (await store.isInRecovery()) throw new FleetError('SITE_STANDBY', `site ${config.site} is a standby; run the custody ceremony on the active site`);
        const site = config.sites[config.site];
        const soPin = await readSoPin(config, site, options.soPinFile);
        const userPin = readPin(`file:${site.hsmPinFile}`);
        const result = await createKeyCustody(store, {
          custodians: options.custodians,
          threshold: options.threshold,
          site: config.site,
          tokenLabel: site.hsmTokenLabel,
          actor: auditActor(custodian),
          wrap: (kek, keys) => wrapSiteKeysForCustody(config, site, { soPin, userPin, kek, ...keys }),
        });
        mkdirSync(options.out, { recursive: true, mode: 0o700 });
        for (const share of result.shares) {
          const path = join(options.out, `custodian-${share.custodian}.share`);
          writeFileSync(path, JSON.stringify(share, null, 2) + '\n', { mode: 0o600 });
          chmodSync(path, 0o600);
        }
        console.log(`key-encryption key ${result.kekId}: ${result.keys.join(', ')} wrapped; ${options.custodians} shares in ${options.out}, any ${options.threshold} restore`);
      });
    });
  custody
    .command('restore')
    .description("put the CA keys into a site's HSM token (the standby's) from M custodian shares")
    .option('--site <id>', 'the site whose token receives the keys', 'b')
    .requiredOption('--share <file...>', 'custodian share files (at least the threshold)')
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)")
    .option('--cloneable', "restore as the active site's own keys after a disaster (extractable only wrapped under a trusted key, so custody can run there again); without it the keys are final clones (docs/backup.md)")
    .action(async (options: { site: string; share: string[]; tokenFile?: string; cloneable?: boolean }) => {
      const shares = readShares(options.share);
      await withDatabase(
        async ({ config, pool }) => {
          await requireOfficer(pool, options.tokenFile, ['custodian'], 'a key restore');
          const keyStore = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
          try {
            const report = await restoreKeysFromShares(postgresCustodyStore(pool), keyStore, shares, { cloneable: options.cloneable === true });
            console.log(`site ${config.site} token ${keyStore.tokenLabel}: restored ${report.restored.join(', ') || 'none'}; already present ${report.alreadyPresent.join(', ') || 'none'}`);
          } finally {
            await keyStore.close();
          }
        },
        { site: options.site },
      );
    });
}
