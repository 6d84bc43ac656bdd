// The TLS material's variables: FLEETPKI_TLS_CA_BUNDLE and FLEETPKI_TLS_<PART>_CERT / _KEY, one key of
// the file's tls: block each, so a systemd unit or a test points a part at its files without writing a
// configuration file. Values are where the material is (paths; keys also file: or credential:), never it.
import { resolve } from 'node:path';
import { z } from 'zod';
import { FleetError } from '../errors.js';
import type { TlsPart } from './types.js';

/** Every TLS variable and the key it sets. PART is the part's name in upper snake case (etcdPeer: ETCD_PEER). */
export const TLS_VARIABLES = {
  FLEETPKI_TLS_CA_BUNDLE: 'tls.caBundle',
  FLEETPKI_TLS_API_CERT: 'tls.api.cert',
  FLEETPKI_TLS_API_KEY: 'tls.api.key',
  FLEETPKI_TLS_STATUS_CERT: 'tls.status.cert',
  FLEETPKI_TLS_STATUS_KEY: 'tls.status.key',
  FLEETPKI_TLS_POSTGRES_CERT: 'tls.postgres.cert',
  FLEETPKI_TLS_POSTGRES_KEY: 'tls.postgres.key',
  FLEETPKI_TLS_REDIS_CERT: 'tls.redis.cert',
  FLEETPKI_TLS_REDIS_KEY: 'tls.redis.key',
  FLEETPKI_TLS_ETCD_CERT: 'tls.etcd.cert',
  FLEETPKI_TLS_ETCD_KEY: 'tls.etcd.key',
  FLEETPKI_TLS_ETCD_PEER_CERT: 'tls.etcdPeer.cert',
  FLEETPKI_TLS_ETCD_PEER_KEY: 'tls.etcdPeer.key',
  FLEETPKI_TLS_ETCD_CLIENT_CERT: 'tls.etcdClient.cert',
  FLEETPKI_TLS_ETCD_CLIENT_KEY: 'tls.etcdClient.key',
} as const satisfies Record<string, `tls.${'caBundle' | `${TlsPart}.${'cert' | 'key'}`}`>;
type TlsVariable = keyof typeof TLS_VARIABLES;

const location = z.string().min(1).optional();
export const tlsEnvSchema = Object.fromEntries(Object.keys(TLS_VARIABLES).map((name) => [name, location])) as Record<TlsVariable, typeof location>;

/**
 * A path as the file would hold it: relative paths are taken from the working directory (as
 * FLEETPKI_HSM_PIN_FILE's are), so the schema's absolute-path rule holds; file: and credential: sources
 * keep their form (a credential is a name, not a path).
 */
function asLocation(value: string): string {
  if (value.startsWith('credential:')) return value;
  if (value.startsWith('file:')) return `file:${resolve(value.slice('file:'.length))}`;
  return resolve(value);
}

/**
 * Lays the TLS variables over the document through `set`. A certificate without its key (or a key
 * without its certificate), in the variables and the file together, is refused naming the variable:
 * a pair is only ever used whole.
 */
export function overlayTlsEnv(doc: Record<string, unknown>, e: Partial<Record<TlsVariable, string>>, set: (variable: string, path: string, value: unknown) => void): void {
  for (const [variable, path] of Object.entries(TLS_VARIABLES) as [TlsVariable, string][]) {
    const value = e[variable];
    if (value !== undefined) set(variable, path, asLocation(value));
  }
  const tls = doc.tls as Record<string, { cert?: unknown; key?: unknown } | undefined> | undefined;
  for (const [variable, path] of Object.entries(TLS_VARIABLES) as [TlsVariable, string][]) {
    if (e[variable] === undefined || path === 'tls.caBundle') continue;
    const [, part, half] = path.split('.') as [string, string, 'cert' | 'key'];
    const other = half === 'cert' ? 'key' : 'cert';
    if (tls?.[part]?.[other] === undefined) {
      const otherVariable = variable.replace(/_(CERT|KEY)$/, other === 'cert' ? '_CERT' : '_KEY');
      throw new FleetError('CONFIG_INVALID', `invalid configuration: ${variable} is set but not ${otherVariable} (nor tls.${part}.${other} in the file): a TLS certificate and its key come together`);
    }
  }
}
