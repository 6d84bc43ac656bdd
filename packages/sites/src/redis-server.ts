import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteConfig } from '@fleetpki/core';
import { probeRedis } from '@fleetpki/queue';
import { run } from './exec.js';
import { livePid, removePidFile } from './pid-file.js';
import { assertPortFree } from './ports.js';

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
 * Each site's Redis holds only the work list (PostgreSQL holds the truth), so it runs without
 * persistence: losing it costs a re-enqueue by the reconciler, never data.
 */
export async function ensureRedis(site: SiteConfig): Promise<'started' | 'running'> {
  if (redisPid(site) !== undefined && (await probeRedis(site.redisUrl)).up) return 'running';
  const dir = redisDir(site);
  await assertPortFree(site.redisPort, `Redis of site ${site.id}`, `FLEETPKI_REDIS_PORT_${site.id.toUpperCase()}`, site.host);
  mkdirSync(dir, { recursive: true });
  removePidFile(pidFile(site));
  await run('redis-server', [
    '--port', String(site.redisPort),
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
    if ((await probeRedis(site.redisUrl, 200)).up) return 'started';
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Redis for site ${site.id} did not answer on port ${site.redisPort}; see ${join(dir, 'redis.log')}`);
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
