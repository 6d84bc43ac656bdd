import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { checkEtcdTls, ensureEtcdAuth, etcdClientTls, etcdHttpGet } from '@fleetpki/consensus';
import { FleetError, type EtcdMember, type FleetConfig } from '@fleetpki/core';
import { inNetns } from './exec.js';
import { livePid, writePidFile } from './pid-file.js';
import { etcdServerTlsFlags } from './etcd-server-tls.js';

// The agent's entry point checks etcd's TLS at start with the same function the services use.
export { checkEtcdTls } from '@fleetpki/consensus';
import { assertPortFree } from './ports.js';

/**
 * The three etcd members that decide which site is the active CA site: one beside each site and a
 * witness in a third place (locally: three processes with their own ports and data folders). etcd does
 * the consensus; fleetpki only starts, stops and watches the members here (Debian package etcd-server).
 */
function pidFile(member: EtcdMember): string {
  return join(member.dir, 'etcd.pid');
}

export function etcdLogFile(member: EtcdMember): string {
  return join(member.dir, '..', `etcd-${member.name}.log`);
}

export function etcdPid(member: EtcdMember): number | undefined {
  return livePid(pidFile(member));
}

/**
 * Is the member answering, and does it see a leader (a quorum of the three)? Over TLS with this host's
 * client pair; a certificate problem comes back as `tlsError` (it will not go away by waiting).
 */
export async function etcdHealth(config: FleetConfig, member: EtcdMember, timeoutMs = 1_000): Promise<{ up: boolean; healthy: boolean; error?: string; tlsError?: FleetError }> {
  try {
    const body = (await etcdHttpGet(member.clientUrl, '/health', etcdClientTls(config), timeoutMs)) as { health?: string; reason?: string };
    return { up: true, healthy: body.health === 'true', ...(body.health === 'true' ? {} : { error: body.reason ?? `health ${body.health}` }) };
  } catch (err) {
    return { up: false, healthy: false, error: (err as Error).message, ...(err instanceof FleetError && err.code.startsWith('ETCD_TLS') ? { tlsError: err } : {}) };
  }
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** Starts one member (a no-op when it runs); the first start of the three forms the cluster. */
async function startMember(config: FleetConfig, member: EtcdMember): Promise<'started' | 'running'> {
  if (etcdPid(member) !== undefined) return 'running';
  for (const url of [member.clientUrl, member.peerUrl]) await assertPortFree(portOf(url), `etcd member ${member.name}`, `FLEETPKI_ETCD_PORT_${member.name.toUpperCase()}`, member.host);
  // Checked before anything starts: bad material is a clear error here, not a Go one in etcd's log.
  const tlsFlags = etcdServerTlsFlags(config, member);
  mkdirSync(member.dir, { recursive: true, mode: 0o700 });
  const members = config.consensus.members;
  // One cluster token per deployment, from its members' peer URLs and its state folder: two clusters
  // (two checkouts, or a test's beside the sites) never join each other, even with one of the two.
  const token = `fleetpki-${createHash('sha256').update(`${config.stateDir}\n${members.map((m) => `${m.name}=${m.peerUrl}`).join(',')}`).digest('hex').slice(0, 12)}`;
  const log = openSync(etcdLogFile(member), 'a');
  const [file, args] = inNetns(
    member.netns,
    'etcd',
    [
      '--name', member.name,
      '--data-dir', join(member.dir, 'data'),
      '--listen-client-urls', member.clientUrl,
      '--advertise-client-urls', member.clientUrl,
      '--listen-peer-urls', member.peerUrl,
      '--initial-advertise-peer-urls', member.peerUrl,
      '--initial-cluster', members.map((m) => `${m.name}=${m.peerUrl}`).join(','),
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', token,
      // Loopback or a LAN between sites: a leader is re-elected within about a second.
      '--heartbeat-interval', '100',
      '--election-timeout', '1000',
      // Clients ping every 2 s to find a connection to a cut-off member (consensus/ca-site.ts).
      '--grpc-keepalive-min-time', '1s',
      '--logger', 'zap',
      '--log-level', 'warn',
      ...tlsFlags,
    ],
  );
  const child = spawn(file, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  writePidFile(pidFile(member), child.pid);
  return 'started';
}

/**
 * Starts every member that is not running, waits until each sees a leader, then makes sure
 * authentication is on with our users and roles (consensus/etcd-auth.ts): also on a cluster that ran
 * without it, so anyone who can reach etcd can no longer write what two administrators decide.
 */
export async function ensureEtcd(config: FleetConfig): Promise<Record<string, 'started' | 'running'>> {
  const outcome: Record<string, 'started' | 'running'> = {};
  for (const member of config.consensus.members) outcome[member.name] = await startMember(config, member);
  for (const member of config.consensus.members) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const health = await etcdHealth(config, member, 500);
      if (health.healthy) break;
      if (health.tlsError) throw health.tlsError;
      if (etcdPid(member) === undefined) throw new FleetError('SITES_ETCD_DOWN', `etcd member ${member.name} exited; see ${etcdLogFile(member)}`);
      if (Date.now() > deadline) throw new FleetError('SITES_ETCD_DOWN', `etcd member ${member.name} is not healthy after 30 s (${health.error ?? 'no answer'}); see ${etcdLogFile(member)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Every member, not only the first to answer: a process must not meet an untrusted member later.
  await checkEtcdTls(config);
  await ensureEtcdAuth(config);
  return outcome;
}

export async function stopEtcdMember(member: EtcdMember, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const pid = etcdPid(member);
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

export async function stopEtcd(config: FleetConfig): Promise<void> {
  for (const member of config.consensus.members) await stopEtcdMember(member);
}
