import type { Command } from 'commander';
import { loadConfig } from '@fleetpki/core';
import { hsmSelfTest, openSiteKeyStore } from '@fleetpki/hsm';

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
}
