// How a client reaches a site's Redis: the URL, and, when the configuration names them, the TLS trust
// anchor and the ACL user with its password (issue 34). Read once from the configuration's files, so a
// process that cannot read its secret stops at start naming the file, not later at the first enqueue.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';

/**
 * Who opens the link: each kind of process that touches the work list has an ACL user of its own, so
 * Redis's ACL LOG and CLIENT LIST say which one did what, and one service's password can be replaced
 * without the others'. The rights are the same (BullMQ's producer and worker run the same scripts).
 */
export const REDIS_CLIENTS = ['issuer-api', 'batch-worker', 'daemons', 'operator'] as const;
export type RedisClient = (typeof REDIS_CLIENTS)[number];

/** The ACL user of a client kind: fleetpki-issuer-api, fleetpki-batch-worker, fleetpki-daemons, fleetpki-operator (CLI, `sites`). */
export function redisUser(client: RedisClient): string {
  return `fleetpki-${client}`;
}

export interface RedisLink {
  /** redis:// on loopback without security; always rediss:// when TLS is configured (no plaintext fallback). */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** The CA bundle (PEM) the server's certificate must chain to, and the name it must carry. */
  readonly tls?: { readonly ca: string; readonly servername?: string };
}

/** The TLS and ACL material of the site's Redis, or undefined when Redis runs open on loopback (the default). */
export interface RedisSecurity {
  readonly cert: string;
  readonly key: string;
  readonly caBundle: string;
  readonly passwordFile: string;
}

/**
 * TLS and the ACL come together or not at all: TLS without a password would let anyone reaching the
 * port in (clients are not asked for certificates), and a password without TLS would cross the network
 * in clear. Half a configuration is refused, naming what is missing.
 */
export function redisSecurity(config: Pick<FleetConfig, 'tls' | 'secrets'>): RedisSecurity | undefined {
  const pair = config.tls.parts.redis;
  const { caBundle } = config.tls;
  const passwordFile = config.secrets.redis;
  if (!pair && !passwordFile) return undefined;
  const missing = [...(pair ? [] : ['tls.redis (cert, key)']), ...(caBundle ? [] : ['tls.caBundle']), ...(passwordFile ? [] : ['secrets.redis'])];
  if (missing.length > 0 || !pair || !caBundle || !passwordFile) {
    throw new FleetError('CONFIG_INVALID', `invalid configuration: Redis with TLS and ACL users needs ${missing.join(', ')} as well (TLS and the Redis password are configured together)`);
  }
  return { cert: pair.cert, key: pair.key, caBundle, passwordFile };
}

/** Reads a secret file: the first line, so an editor's trailing newline is not part of the password. */
export function readRedisPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetError('CONFIG_INVALID', `cannot read the Redis password file ${file} (secrets.redis): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password.length < 16) throw new FleetError('CONFIG_INVALID', `the Redis password in ${file} (secrets.redis) is shorter than 16 characters`);
  return password;
}

function readCaBundle(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetError('CONFIG_INVALID', `cannot read the CA bundle ${file} (tls.caBundle): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/**
 * The link of one client kind of this configuration to one site's Redis. secrets.redis is this process's
 * own password: in production each unit's credential `redis-password` is a file of its own.
 */
export function redisLink(config: Pick<FleetConfig, 'tls' | 'secrets'>, site: Pick<SiteConfig, 'redisUrl'>, client: RedisClient = 'operator'): RedisLink {
  const security = redisSecurity(config);
  if (!security) return { url: site.redisUrl };
  const url = new URL(site.redisUrl);
  url.protocol = 'rediss:';
  // A URL's own user and password would silently override the ACL user; the configuration's files win.
  url.username = '';
  url.password = '';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    url: url.toString(),
    username: redisUser(client),
    password: readRedisPassword(security.passwordFile),
    // SNI carries names only (RFC 6066 §3); for an address Node checks the certificate's IP SAN against the host.
    tls: { ca: readCaBundle(security.caBundle), ...(isIP(host) ? {} : { servername: host }) },
  };
}

/** A link given as a bare URL (tests, tools on loopback) or from the configuration. */
export function asRedisLink(target: string | RedisLink): RedisLink {
  return typeof target === 'string' ? { url: target } : target;
}

/** host:port of a link, for messages (never the password). */
export function redisAddress(link: RedisLink): string {
  return new URL(link.url).host;
}
