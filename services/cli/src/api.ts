import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FleetError, loadConfig } from '@fleetpki/core';
import { FleetApiClient } from '@fleetpki/client';

export interface ApiOptions {
  api?: string;
  tokenFile?: string;
}

/**
 * The API of this process's site (sites.<id>.api.url, or --api), with the token from --token-file or
 * FLEETPKI_TOKEN; over https its certificate is checked against the configured bundle.
 */
export function apiClient(options: ApiOptions): FleetApiClient {
  const token = options.tokenFile ? readFileSync(options.tokenFile, 'utf8').trim() : process.env.FLEETPKI_TOKEN;
  if (!token) throw new FleetError('TOKEN_MISSING', 'give the API token with --token-file FILE or FLEETPKI_TOKEN (pnpm fleetpki tokens create ...)');
  const config = loadConfig();
  // The token would cross in clear, and the API would not answer anyway: said plainly instead.
  if (options.api?.startsWith('http:') && config.api.tls) throw new FleetError('API_TLS_REQUIRED', `--api ${options.api} is plain HTTP but the issuer API serves HTTPS (api.tls, tls.api): use https://`);
  return FleetApiClient.forSite(config, config.site, token, options.api);
}

export function withApiOptions(command: Command): Command {
  return command.option('--api <url>', "issuer API base URL (default: this site's)").option('--token-file <file>', 'file holding the API token (default: $FLEETPKI_TOKEN)');
}

