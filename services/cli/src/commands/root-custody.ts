import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { auditActor, createRootCustody, parseRootBackup, postgresCustodyStore, restoreRootFromShares } from '@fleetpki/ca';
import { FleetError } from '@fleetpki/core';
import { ensureRootCopyToken, openRootKeyStoreAt, wrapRootKeysForCustody } from '@fleetpki/sites';
import { executeApproved, requireOfficer, withDatabase } from '../context.js';
import { openCeremonyRoot, readRootPin, readRootSoPin, rootPinOption } from '../custodian-pins.js';
import { readShares } from '../custodian-shares.js';

const writePrivate = (path: string, text: string) => {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
};

/** `ceremony root-custody` and `ceremony root-restore`: the offline root's second copy (root-custody.ts). */
export function registerRootCustody(ceremony: Command): void {
  rootPinOption(
    ceremony
      .command('root-custody')
      .description("an approved ca.root-custody (two custodians): the root token's security officer wraps every copyable root key under a KEK split among the custodians; writes root-backup.json (for offline media, never the database) and the shares")
      .requiredOption('--approval <id>', 'the approved ca.root-custody request')
      .requiredOption('--custodians <n>', 'number of custodians (shares)', Number)
      .requiredOption('--threshold <m>', 'shares needed to restore', Number)
      .requiredOption('--out <dir>', 'where to write root-backup.json and custodian-N.share (hand each share to its custodian, then delete)')
      .option('--root-so-pin-file <file>', "the root token's security officer PIN (custodians); - to type it (default: .fleetpki/custodians/<root token>.so-pin)")
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { approval: string; custodians: number; threshold: number; out: string; rootSoPinFile?: string; tokenFile?: string; rootPinFile?: string; rootHsmDir?: string }) => {
    await withDatabase(async ({ config, pool }) => {
      const userPin = await readRootPin(config, options.rootPinFile);
      const soPin = await readRootSoPin(config, options.rootSoPinFile);
      const result = await executeApproved(
        config,
        pool,
        options.approval,
        options.tokenFile,
        'ca.root-custody',
        async (_payload, actor) => {
          const rootKeyStore = await openCeremonyRoot(config, options);
          try {
            return await createRootCustody({
              store: postgresCustodyStore(pool),
              rootKeyStore,
              site: config.site,
              actor,
              custodians: options.custodians,
              threshold: options.threshold,
              wrap: (kek, keys) => wrapRootKeysForCustody(config, { soPin, userPin, kek, ...keys }, options.rootHsmDir),
              deliver: async (backup, shares) => {
                mkdirSync(options.out, { recursive: true, mode: 0o700 });
                writePrivate(join(options.out, 'root-backup.json'), JSON.stringify(backup, null, 2) + '\n');
                for (const share of shares) writePrivate(join(options.out, `custodian-${share.custodian}.share`), JSON.stringify(share, null, 2) + '\n');
              },
            });
          } finally {
            await rootKeyStore.close();
          }
        },
        (r) => ({ kekId: r.backup.kekId, roots: r.backup.keys.map((k) => k.rootId) }),
      );
      console.log(`key-encryption key ${result.backup.kekId}: root ${result.backup.keys.map((k) => k.rootId).join(', ')} wrapped into ${join(options.out, 'root-backup.json')}; ${options.custodians} shares, any ${options.threshold} restore`);
      if (result.uncopyable.length) console.log(`not copyable (generated before roots could be copied): ${result.uncopyable.join(', ')}; a root rollover replaces them with a copyable root`);
      if (result.absent.length) console.log(`not in this root HSM (their custody runs where their key is): ${result.absent.join(', ')}`);
    });
  });
  ceremony
    .command('root-restore')
    .description("a second copy of the offline root: the root keys of root-backup.json restored from M custodian shares into the root token of another root HSM (never a site's)")
    .requiredOption('--backup <file>', 'root-backup.json from `ceremony root-custody`')
    .requiredOption('--share <file...>', 'custodian share files (at least the threshold)')
    .requiredOption('--hsm-dir <dir>', "the second root HSM's folder (SoftHSM token directory here); its root token is made if absent")
    .option('--root-pin-file <file>', "the root token's PIN (custodians), which the copy gets too; - to type it")
    .option('--root-so-pin-file <file>', "the root token's security officer PIN (custodians), which the copy gets too; - to type it")
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { backup: string; share: string[]; hsmDir: string; rootPinFile?: string; rootSoPinFile?: string; tokenFile?: string }) => {
      let text: string;
      try {
        text = readFileSync(options.backup, 'utf8');
      } catch (err) {
        throw new FleetError('ROOT_BACKUP_UNREADABLE', `cannot read ${options.backup}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const backup = parseRootBackup(text, options.backup);
      const shares = readShares(options.share);
      await withDatabase(async ({ config, pool }) => {
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], "a restore of the root's copy");
        const userPin = await readRootPin(config, options.rootPinFile);
        const made = await ensureRootCopyToken(config, options.hsmDir, { soPin: await readRootSoPin(config, options.rootSoPinFile), userPin });
        const target = await openRootKeyStoreAt(config, userPin, options.hsmDir);
        try {
          const report = await restoreRootFromShares({ store: postgresCustodyStore(pool), target, site: config.site, actor: auditActor(custodian) }, backup, shares);
          console.log(`root copy at ${options.hsmDir} (token ${config.rootTokenLabel}, ${made}): restored ${report.restored.join(', ') || 'none'}; already present ${report.alreadyPresent.join(', ') || 'none'}`);
          console.log(`root ceremonies run with it given --root-hsm-dir ${options.hsmDir}`);
        } finally {
          await target.close();
        }
      });
    });
}
