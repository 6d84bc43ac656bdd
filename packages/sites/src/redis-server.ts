import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, type FleetConfig, type SiteConfig } from '@fleetpki/core';
import { probeRedis, redisLink, redisSecurity, type RedisLink } from '@fleetpki/queue';
import { run } from './exec.js';
import { livePid, removePidFile } from './pid-file.js';
import { assertPortFree } from './ports.js';
import { writeRedisAclFile } from './redis-acl.js';

/** What ensureRedis reads of the configuration: the TLS material, the password file, and the CA database (queue prefix). */
export type RedisServerConfig = Pick<FleetConfig, 'tls' | 'secrets' | 'pgDatabase'>;

const OPEN: RedisServerConfig = { tls: { caBundle: undefined, parts: {} }, secrets: { postgres: {}, redis: undefined, etcd: undefined, backup: undefined }, pgDatabase: 'fleetpki' };

function redisDir(site: SiteConfig): string {
  return join(site.dir, 'redis');
}

function pidFile(site: SiteConfig): string {
  return join(redisDir(site), 'redis.pid');
}

export function redisPid(site: SiteConfig): number | undefined {
  return livePid(pidFile(site));
}

/**
 * TLS on the site's port and no plaintext port at all (--port 0), so nothing can fall back to clear text.
 * Clients are not asked for certificates (--tls-auth-clients no): Redis 7.0 cannot map a certificate to
 * an ACL user, so a client certificate would prove only "holds some certificate of the organisation CA"
 * while costing a key pair per service; the ACL user's password is the client's identity.
 */
function securityArgs(site: SiteConfig, config: RedisServerConfig): string[] {
  const security = redisSecurity(config);
  if (!security) return ['--port', String(site.redisPort)];
  const aclFile = join(redisDir(site), 'users.acl');
  writeRedisAclFile(aclFile, security.passwordFile, config.pgDatabase);
  return [
    '--port', '0',
    '--tls-port', String(site.redisPort),
    '--tls-cert-file', security.cert,
    '--tls-key-file', security.key,
    '--tls-ca-cert-file', security.caBundle,
    '--tls-auth-clients', 'no',
    '--aclfile', aclFile,
  ];
}

/** Redis's own words on why it stopped (a TLS key that does not match its certificate, say): its log's warning lines ('#'). */
function logWarnings(file: string): string {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const warnings = text.split('\n').filter((line) => / # /.test(line)).slice(-3).map((line) => line.replace(/^.* # /, ''));
  return warnings.length > 0 ? `: ${warnings.join('; ')}` : '';
}

/** A refusal (wrong password, untrusted certificate, plaintext to TLS) stops start-up; absence is waited for. */
async function answering(link: RedisLink, timeoutMs: number): Promise<boolean> {
  const health = await probeRedis(link, timeoutMs);
  if (health.failure) throw health.failure;
  return health.up;
}

/**
 * Each site's Redis holds only the work list (PostgreSQL holds the truth), so it runs without
 * persistence: losing it costs a re-enqueue by the reconciler, never data. With tls.redis, tls.caBundle
 * and secrets.redis configured it runs TLS-only with ACL users (redis-acl.ts); otherwise open on loopback.
 */
export async function ensureRedis(site: SiteConfig, config: RedisServerConfig = OPEN): Promise<'started' | 'running'> {
  const link = redisLink(config, site);
  if (redisPid(site) !== undefined && (await answering(link, 1_000))) return 'running';
  const dir = redisDir(site);
  await assertPortFree(site.redisPort, `Redis of site ${site.id}`, `FLEETPKI_REDIS_PORT_${site.id.toUpperCase()}`, site.host);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  removePidFile(pidFile(site));
  await run('redis-server', [
    ...securityArgs(site, config),
    '--bind', site.host,
    // Redis refuses clients off loopback without a password; the namespaces' link is this machine's own.
    ...(site.netns ? ['--protected-mode', 'no'] : []),
    '--daemonize', 'yes',
    '--pidfile', pidFile(site),
    '--dir', dir,
    '--logfile', join(dir, 'redis.log'),
    '--save', '',
    '--appendonly', 'no',
    // BullMQ requires that Redis never evicts its keys.
    '--maxmemory-policy', 'noeviction',
  ], { netns: site.netns });
  for (let i = 0; i < 50; i++) {
    if (await answering(link, 200)) return 'started';
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new FleetError('REDIS_NOT_STARTED', `Redis for site ${site.id} did not answer on ${site.host}:${site.redisPort}${logWarnings(join(dir, 'redis.log'))}; see ${join(dir, 'redis.log')}`);
}

export async function stopRedis(site: SiteConfig, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const pid = redisPid(site);
  if (pid === undefined) return;
  process.kill(pid, signal);
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill(pid, 'SIGKILL');
}
