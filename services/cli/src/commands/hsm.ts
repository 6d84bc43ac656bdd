import type { Command } from 'commander';
import { auditActor, destroyTrustedKey, postgresCustodyStore } from '@fleetpki/ca';
import { loadConfig } from '@fleetpki/core';
import { hsmSelfTest, openSiteKeyStore } from '@fleetpki/hsm';
import { checkKeyProtection, custodianPinFiles, formatKeyProtectionReport, readCeremonyPin } from '@fleetpki/sites';
import { existsSync } from 'node:fs';
import { requireOfficer, withDatabase } from '../context.js';

export function registerHsmCommands(program: Command): void {
  const hsm = program.command('hsm').description("the site's HSM token");
  hsm
    .command('self-test')
    .description('generate (first run) a P-256 test key, sign, verify with node:crypto, and time raw signing')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const store = await openSiteKeyStore(config);
      try {
        const result = await hsmSelfTest(store);
        if (options.json) console.log(JSON.stringify(result));
        else
          console.log(
            `token ${result.token}: key "${result.keyLabel}" ${result.keyCreated ? 'created' : 'present'}, signature ${result.signatureVerified ? 'verified' : 'FAILED'}, private key ${result.privateKeySensitive ? 'sensitive' : 'NOT sensitive'}, ${result.signaturesPerSecond} signatures/s (one session)`,
          );
        if (!result.signatureVerified || !result.privateKeySensitive) process.exitCode = 1;
      } finally {
        await store.close();
      }
    });
  hsm
    .command('describe <label>')
    .description("a key pair in the site's token: sensitive, extractable, public key (nothing secret is readable)")
    .option('--site <id>', 'the site whose token to read')
    .option('--json', 'print JSON')
    .action(async (label: string, options: { site?: string; json?: boolean }) => {
      const config = loadConfig(options.site ? { ...process.env, FLEETPKI_SITE: options.site } : process.env);
      const store = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
      try {
        const info = await store.describeKey(label);
        const view = { token: store.tokenLabel, label, id: info.id.toString('hex'), sensitive: info.sensitive, extractable: info.extractable, wrapWithTrusted: info.wrapWithTrusted, alwaysSensitive: info.alwaysSensitive, neverExtractable: info.neverExtractable, publicKeySpki: info.publicKeySpki.toString('base64') };
        console.log(
          options.json
            ? JSON.stringify(view)
            : `token ${view.token}: "${label}" (CKA_ID ${view.id}) sensitive=${view.sensitive} extractable=${view.extractable} wrap-with-trusted=${view.wrapWithTrusted} never-extractable=${view.neverExtractable}\npublic key (SPKI, base64): ${view.publicKeySpki}`,
        );
      } finally {
        await store.close();
      }
    });
  hsm
    .command('check')
    .description("every key in the sites' tokens (and the root's, with its PIN): protection attributes, plus a wrap under a key of one's own that the token must refuse; exits 1 when anything is too weak")
    .option('--root-pin-file <file>', "the offline root's PIN (custodians), to inspect the root token too; - to type it (default: .fleetpki/custodians/<root token>.pin when present)")
    .option('--json', 'print JSON')
    .action(async (options: { rootPinFile?: string; json?: boolean }) => {
      const config = loadConfig();
      const rootPinFile = options.rootPinFile ?? (existsSync(custodianPinFiles(config).rootPin) ? custodianPinFiles(config).rootPin : undefined);
      const rootPin = rootPinFile ? await readCeremonyPin(rootPinFile, `root token ${config.rootTokenLabel} PIN`) : undefined;
      const report = await checkKeyProtection(config, rootPin ? { rootPin } : {});
      console.log(options.json ? JSON.stringify(report) : formatKeyProtectionReport(report));
      if (!report.ok) process.exitCode = 1;
    });
  hsm
    .command('destroy-trusted-key')
    .description("destroy a trusted key found on the site's token outside a custody ceremony (hsm check and /readyz name it); audited")
    .requiredOption('--label <label>', 'the trusted key\'s label, as hsm check names it')
    .option('--site <id>', 'the site whose token holds it')
    .option('--token-file <file>', "the custodian's API token (default: $FLEETPKI_TOKEN)")
    .action(async (options: { label: string; site?: string; tokenFile?: string }) => {
      await withDatabase(
        async ({ config, pool }) => {
          const custodian = await requireOfficer(pool, options.tokenFile, ['custodian'], 'destroying a trusted key');
          const store = await openSiteKeyStore(config, config.sites[config.site], { sessions: 1 });
          try {
            const removed = await destroyTrustedKey({ store: postgresCustodyStore(pool), site: config.site, actor: auditActor(custodian) }, store, options.label);
            console.log(`token ${store.tokenLabel}: destroyed ${removed} trusted object(s) labelled "${options.label}"; treat the keys that could be wrapped under it as possibly copied`);
          } finally {
            await store.close();
          }
        },
        options.site ? { site: options.site } : {},
      );
    });
}
