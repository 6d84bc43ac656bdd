import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '@fleetpki/core';
import { arlUrl, createSubordinateCa, hardenTokenKeys, moveRootToken, postgresCustodyStore, postgresSiteStore, publishAuthorityRevocationList, publishEveryAuthorityRevocationList, readSiteState, renewSubordinateCa, runCeremony, auditActor } from '@fleetpki/ca';
import { openSiteKeyStore } from '@fleetpki/hsm';
import { toPem } from '@fleetpki/x509';
import { hardenSiteKeys, migrateRootToken } from '@fleetpki/sites';
import { requireOfficer, withDatabase } from '../context.js';
import { registerRootCustody } from './root-custody.js';
import { registerRootRollover } from './root-rollover.js';
import { openCeremonyRoot, rootPinOption } from '../custodian-pins.js';

export function registerCeremonyCommands(program: Command): void {
  const ceremony = program.command('ceremony').description('key ceremonies (custodians)');
  rootPinOption(
    ceremony
      .command('init')
      .description("create the CA hierarchy: the root key in the offline root's HSM, device issuing and organisation CA keys in the site's; a re-run checks keys against certificates")
      .option('--out <dir>', 'also write root.pem, issuing.pem, organisation.pem and chain.pem here')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { out?: string; tokenFile?: string; rootPinFile?: string; rootHsmDir?: string }) => {
      await withDatabase(async ({ config, pool }) => {
        const site = config.sites[config.site];
        const state = await readSiteState(postgresSiteStore(pool), site.id);
        if (!state) throw new FleetError('SITE_STATE_MISSING', `no site_state row for site ${site.id}: run \`pnpm fleetpki db migrate\``);
        if (state.role !== 'active') throw new FleetError('SITE_NOT_ACTIVE', `site ${site.id} is ${state.role}; run the ceremony on the active site`);
        const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'the key ceremony');
        const rootKeyStore = await openCeremonyRoot(config, options);
        let siteKeyStore: Awaited<ReturnType<typeof openSiteKeyStore>> | undefined;
        try {
          siteKeyStore = await openSiteKeyStore(config, site, { sessions: 1 });
          const result = await runCeremony({ store: postgresCustodyStore(pool), rootKeyStore, siteKeyStore, site: site.id, serialPrefix: state.serialPrefix, actor: auditActor(custodian) });
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
        const maintenance = { store: postgresCustodyStore(pool), site: config.site, actor: auditActor(custodian), tokenLabel: config.sites[config.site].hsmTokenLabel };
        const report = await hardenTokenKeys(maintenance, () => hardenSiteKeys(config, (line) => console.log(line)));
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
        const maintenance = { store: postgresCustodyStore(pool), site: config.site, actor: auditActor(custodian), rootTokenLabel: config.rootTokenLabel, to: config.rootHsm.dir };
        const outcome = await moveRootToken(maintenance, () => migrateRootToken(config, (line) => console.log(line)));
        if (outcome !== 'moved') console.log(`the root token ${config.rootTokenLabel} is not in site a's HSM: nothing to do`);
      });
    });
  rootPinOption(
    ceremony
      .command('new-ca')
      .description('a new subordinate CA: its key in the site HSM (cloneable under the trusted KEK only), its certificate signed by the offline root')
      .requiredOption('--id <id>', 'CA id (2-16 lower-case letters and digits; it appears in CRL URLs), e.g. fpd2')
      .option('--kind <kind>', 'device-issuing or organisation', 'device-issuing')
      .requiredOption('--name <cn>', 'subject common name (short for device CAs: it is copied into every certificate)')
      .option('--years <n>', 'validity in years', (v) => Number(v), 25)
      .option('--out <file>', 'also write the certificate (PEM) here')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { id: string; kind: string; name: string; years: number; out?: string; tokenFile?: string; rootPinFile?: string; rootHsmDir?: string }) => {
    if (options.kind !== 'device-issuing' && options.kind !== 'organisation') throw new FleetError('CA_KIND_INVALID', `--kind must be device-issuing or organisation, not ${options.kind}`);
    const kind = options.kind;
    await withDatabase(async ({ config, pool }) => {
      const site = config.sites[config.site];
      const state = await readSiteState(postgresSiteStore(pool), site.id);
      if (state?.role !== 'active') throw new FleetError('SITE_NOT_ACTIVE', `site ${site.id} is not the active site; run the ceremony there`);
      const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'a new CA');
      const rootKeyStore = await openCeremonyRoot(config, options);
      const siteKeyStore = await openSiteKeyStore(config, site, { sessions: 1 }).catch(async (err: unknown) => {
        await rootKeyStore.close();
        throw err;
      });
      try {
        const ca = await createSubordinateCa({ store: postgresCustodyStore(pool), rootKeyStore, siteKeyStore, site: site.id, actor: auditActor(custodian), id: options.id, kind, name: { commonName: options.name }, years: options.years, serialPrefix: state.serialPrefix });
        console.log(`CA ${ca.id} (${ca.kind}) created: ${ca.subjectDn}, key ${ca.keyUri}, expires ${ca.notAfter.toISOString()}`);
        if (options.out) writeFileSync(options.out, toPem(ca.certificate));
        console.log('run a custody ceremony next, so the standby site gets a clone of its key');
      } finally {
        await siteKeyStore.close();
        await rootKeyStore.close();
      }
    });
  });
  rootPinOption(
    ceremony
      .command('arl')
      .description("sign and publish each live root's CRL of CA certificates (ARL): every revoked CA it certified; run after each CA revocation and before the ARLs' nextUpdate")
      .option('--root <id>', 'the root whose ARL to sign (default: the current root; an earlier generation signs its own while meters trust it)')
      .option('--out <file>', 'also write the ARL (DER) here (with several roots: <file>-<root>.der)')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { root?: string; out?: string; tokenFile?: string; rootPinFile?: string; rootHsmDir?: string }) => {
    await withDatabase(async ({ config, pool }) => {
      const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'signing the ARL');
      const rootKeyStore = await openCeremonyRoot(config, options);
      try {
        const base = { store: postgresCustodyStore(pool), rootKeyStore, site: config.site, actor: auditActor(custodian) };
        const { published, skipped } = options.root ? { published: [await publishAuthorityRevocationList({ ...base, rootId: options.root })], skipped: [] } : await publishEveryAuthorityRevocationList(base);
        if (options.out && published.length === 1) writeFileSync(options.out, published[0]!.der);
        else if (options.out) for (const arl of published) writeFileSync(`${options.out.replace(/\.[a-z]+$/, '')}-${arl.rootId}.der`, arl.der);
        for (const arl of published) {
          console.log(`${arl.rootId}: ARL number ${arl.crlNumber}: ${arl.entries.length ? arl.entries.map((e) => `${e.caId} (serial ${e.serial}, reason ${e.reason})`).join(', ') : 'no revoked CA'}; next update ${arl.nextUpdate.toISOString()}; served at ${arlUrl(config.crlBaseUrl, arl.rootId)}`);
        }
        if (skipped.length) console.log(`not signed here (their keys are not in this root token): ${skipped.join(', ')}`);
      } finally {
        await rootKeyStore.close();
      }
    });
  });
  registerRootRollover(ceremony);
  registerRootCustody(ceremony);
  rootPinOption(
    ceremony
      .command('renew-ca')
      .description("renew a subordinate CA's certificate with the offline root: same key and subject, new serial and validity")
      .requiredOption('--ca <id>', 'the CA, e.g. fpd1')
      .option('--years <n>', 'validity in years from now', (v) => Number(v), 25)
      .option('--out <file>', 'also write the new certificate (PEM) here')
      .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)"),
  ).action(async (options: { ca: string; years: number; out?: string; tokenFile?: string; rootPinFile?: string; rootHsmDir?: string }) => {
    await withDatabase(async ({ config, pool }) => {
      const site = config.sites[config.site];
      const state = await readSiteState(postgresSiteStore(pool), site.id);
      if (state?.role !== 'active') throw new FleetError('SITE_NOT_ACTIVE', `site ${site.id} is not the active site; run the ceremony there`);
      const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'renewing a CA certificate');
      const rootKeyStore = await openCeremonyRoot(config, options);
      try {
        const ca = await renewSubordinateCa({ store: postgresCustodyStore(pool), rootKeyStore, site: site.id, actor: auditActor(custodian), caId: options.ca, years: options.years, serialPrefix: state.serialPrefix });
        if (options.out) writeFileSync(options.out, toPem(ca.certificate));
        console.log(`CA ${ca.id} renewed: expires ${ca.notAfter.toISOString()}; restart the services to serve the new chain`);
      } finally {
        await rootKeyStore.close();
      }
    });
  });
}
