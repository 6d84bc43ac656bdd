#!/usr/bin/env node
import { Command } from 'commander';
import { isFleetError } from '@fleetpki/core';
import { registerApprovalCommands } from './commands/approvals.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerBatchCommands } from './commands/batch.js';
import { registerC509Commands } from './commands/c509.js';
import { registerCeremonyCommands } from './commands/ceremony.js';
import { registerCustodyCommands } from './commands/custody.js';
import { registerManifestCommands } from './commands/manifest.js';
import { registerRevokeCommands } from './commands/revoke.js';
import { registerConfigCommands } from './commands/config.js';
import { registerDbCommands } from './commands/db.js';
import { registerDrillCommands } from './commands/drill.js';
import { registerHsmCommands } from './commands/hsm.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerSitesCommands } from './commands/sites.js';
import { registerTlsCommands } from './commands/tls.js';
import { registerCmpCommands } from './commands/cmp.js';
import { registerBootstrapCommands, registerTokenCommands } from './commands/tokens.js';

// `fleetpki ... | head` closes stdout early; that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('fleetpki').description('fleetpki: a certificate authority for millions of devices').showHelpAfterError();
registerSitesCommands(program);
registerConfigCommands(program);
registerDbCommands(program);
registerHsmCommands(program);
registerCeremonyCommands(program);
registerCustodyCommands(program);
registerTokenCommands(program);
registerBootstrapCommands(program);
registerManifestCommands(program);
registerBatchCommands(program);
registerRevokeCommands(program);
registerDrillCommands(program);
registerBackupCommands(program);
registerKeyCommands(program);
registerAuditCommands(program);
registerC509Commands(program);
registerApprovalCommands(program);
registerTlsCommands(program);
registerCmpCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // Expected failures print their stable code and message; anything else is a bug and keeps its stack.
  if (isFleetError(err)) console.error(`fleetpki: ${err.code}: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
