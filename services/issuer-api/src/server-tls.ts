// The issuer API's HTTPS material: the pair the configuration names (tls.api), or what
// `fleetpki tls server` wrote for the site (api.tlsDir), or none (plain HTTP, loopback only).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, readServerTls, type FleetConfig } from '@fleetpki/core';

export interface TlsMaterial {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** Whose client certificates are accepted (people and factories: the organisation CA). */
  readonly clientCa: Buffer;
}

/** The files `fleetpki tls server` writes for a site. */
export function readTlsMaterial(dir: string): TlsMaterial {
  const file = (name: string) => {
    const path = join(dir, name);
    if (!existsSync(path)) throw new FleetError('TLS_MISSING', `FLEETPKI_API_TLS=on but ${path} is missing: run \`pnpm fleetpki tls server\` (or name the API's pair in tls.api)`);
    return readFileSync(path);
  };
  return { key: file('server.key'), cert: file('server.pem'), clientCa: file('clients-ca.pem') };
}

/**
 * tls.api when the configuration names it (keys from a file or a systemd credential, as every part's;
 * client certificates checked against tls.caBundle, which holds the organisation CA); else, with api.tls
 * on, the site's files from `fleetpki tls server`; else undefined.
 */
export function apiServerTls(config: Pick<FleetConfig, 'tls' | 'api'>): TlsMaterial | undefined {
  const named = readServerTls(config, 'api');
  if (named) return { key: named.key, cert: named.cert, clientCa: named.ca };
  return config.api.tls ? readTlsMaterial(config.api.tlsDir) : undefined;
}
