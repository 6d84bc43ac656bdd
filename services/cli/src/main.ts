#!/usr/bin/env node
import { Command } from 'commander';
import { isFleetError } from '@fleetpki/core';
import { registerDbCommands } from './commands/db.js';
import { registerHsmCommands } from './commands/hsm.js';
import { registerSitesCommands } from './commands/sites.js';

const program = new Command('fleetpki').description('fleetpki: a certificate authority for millions of devices').showHelpAfterError();
registerSitesCommands(program);
registerDbCommands(program);
registerHsmCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // Expected failures print their stable code and message; anything else is a bug and keeps its stack.
  if (isFleetError(err)) console.error(`fleetpki: ${err.code}: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
