import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '@fleetpki/core';
import { auditActor, postgresCustodyStore, retireRoot, postgresSiteStore, readSiteState, rollRootKey } from '@fleetpki/ca';
import { toPem } from '@fleetpki/x509';
import { executeApproved, requireOfficer, withDatabase } from '../context.js';
import { openCeremonyRoot, rootPinOption } from '../custodian-pins.js';

/** `fleetpki ceremony root-rollover`: a new root generation with its link certificates (root-rollover.ts). */
export function registerRootRollover(ceremony: Command): void {
  rootPinOption(
    ceremony
      .command('root-rollover')
      .description("an approved ca.root-rollover (two custodians: `approvals request ca.root-rollover --ca <new id> --name <cn>`): a new root key in the offline root's HSM, its certificate, the NewWithOld and OldWithNew link certificates, and the device issuing CAs re-certified under it (RFC 4210 4.4)")
      .requiredOption('--approval <id>', 'the approved ca.root-rollover request: it names the new root\'s id and common name')
      .option('--years <n>', 'validity in years (it must outlive the old root)', (v) => Number(v), 40)
      .option('--out <dir>', 'also write new-with-new.pem, new-with-old.pem, old-with-new.pem and each re-certified CA here')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { approval: string; years: number; out?: string; tokenFile?: string; rootPinFile?: string; rootHsmDir?: string }) => {
    if (!Number.isInteger(options.years) || options.years < 1 || options.years > 100) throw new FleetError('CA_VALIDITY_INVALID', `--years must be a whole number of years from 1 to 100, not ${options.years}`);
    await withDatabase(async ({ config, pool }) => {
      const site = config.sites[config.site];
      const state = await readSiteState(postgresSiteStore(pool), site.id);
      if (state?.role !== 'active') throw new FleetError('SITE_NOT_ACTIVE', `site ${site.id} is not the active site; run the ceremony there`);
      // The root's HSM opens only once the approval is claimed (executeApproved checks the officer and the approval first).
      const rollover = await executeApproved(
        config,
        pool,
        options.approval,
        options.tokenFile,
        'ca.root-rollover',
        async (payload, actor) => {
          if (typeof payload.id !== 'string' || typeof payload.name !== 'string') throw new FleetError('APPROVAL_PAYLOAD_INVALID', 'the ca.root-rollover request names no new root id and name');
          const rootKeyStore = await openCeremonyRoot(config, options);
          try {
            return await rollRootKey({ store: postgresCustodyStore(pool), rootKeyStore, site: site.id, actor, id: payload.id, name: { commonName: payload.name }, years: options.years, serialPrefix: state.serialPrefix });
          } finally {
            await rootKeyStore.close();
          }
        },
        (r) => ({ root: r.root.id, replaced: r.replaced.id, recertified: r.recertified.map((c) => c.caId) }),
      );
      console.log(`root ${rollover.root.id} (${rollover.root.subjectDn}) replaces ${rollover.replaced.id}: key ${rollover.root.keyUri}, expires ${rollover.root.notAfter.toISOString()}`);
      console.log(`re-certified under it: ${rollover.recertified.map((r) => r.caId).join(', ') || 'none'}; the old root stays trusted and keeps signing its own ARL (\`ceremony arl\` signs every live root's)`);
      if (options.out) {
        mkdirSync(options.out, { recursive: true });
        writeFileSync(join(options.out, 'new-with-new.pem'), toPem(rollover.root.certificate));
        writeFileSync(join(options.out, 'new-with-old.pem'), toPem(rollover.newWithOld));
        writeFileSync(join(options.out, 'old-with-new.pem'), toPem(rollover.oldWithNew));
        for (const r of rollover.recertified) writeFileSync(join(options.out, `${r.caId}.pem`), toPem(r.certificate));
        console.log(`wrote the new root, the link certificates and the re-certified CAs to ${options.out}`);
      }
      console.log('restart the issuer APIs to serve the new chain (EST /cacerts, CMP rootCaKeyUpdate); run `ceremony arl` now: the new root\'s first ARL');
    });
  });
  ceremony
    .command('root-retire')
    .description("end a root's transition once every meter holds its successor: its links leave EST /cacerts and CMP, its ARL is no longer signed (its key stays in the root HSM)")
    .requiredOption('--root <id>', 'the replaced root, e.g. root')
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { root: string; tokenFile?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const site = config.sites[config.site];
        if ((await readSiteState(postgresSiteStore(pool), site.id))?.role !== 'active') throw new FleetError('SITE_NOT_ACTIVE', `site ${site.id} is not the active site; run the ceremony there`);
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], "retiring a root");
        const root = await retireRoot({ store: postgresCustodyStore(pool), site: site.id, actor: auditActor(custodian), rootId: options.root });
        console.log(`root ${root.id} retired: restart the issuer APIs to stop serving its links`);
      });
    });
}
