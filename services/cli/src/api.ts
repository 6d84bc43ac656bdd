import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FleetError, loadConfig } from '@fleetpki/core';
import { FleetApiClient } from '@fleetpki/client';

export interface ApiOptions {
  api?: string;
  tokenFile?: string;
}

/** The API of this process's site, with the token from --token-file or FLEETPKI_TOKEN. */
export function apiClient(options: ApiOptions): FleetApiClient {
  const token = options.tokenFile ? readFileSync(options.tokenFile, 'utf8').trim() : process.env.FLEETPKI_TOKEN;
  if (!token) throw new FleetError('TOKEN_MISSING', 'give the API token with --token-file FILE or FLEETPKI_TOKEN (pnpm fleetpki tokens create ...)');
  const config = loadConfig();
  return new FleetApiClient(options.api ?? `http://${config.sites[config.site].host}:${config.sites[config.site].apiPort}`, token);
}

export function withApiOptions(command: Command): Command {
  return command.option('--api <url>', "issuer API base URL (default: this site's)").option('--token-file <file>', 'file holding the API token (default: $FLEETPKI_TOKEN)');
}

