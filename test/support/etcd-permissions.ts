import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CaSiteReader, ELECTION, etcdctlTlsFlags, openConsensus, readEtcdPassword, type EtcdIdentity } from '@fleetpki/consensus';
import type { FleetConfig } from '@fleetpki/core';

/**
 * What a client of etcd may do with each credential (issue 33 §2), tried against a live cluster whose
 * setup ran (ensureEtcdAuth): test/etcd-auth.test.ts on the local sites, and the same checks against a
 * scratch etcd. The attempts use etcdctl, the tool anyone who can reach etcd has, without credentials or
 * with one of ours; each refused attempt must leave the key or lease as it was.
 */
export type Attempt = 'put unprotected' | 'delete unprotected' | 'delete election key' | 'revoke leader lease' | 'put vouch-floor';

export function etcdctl(config: FleetConfig, as: EtcdIdentity | undefined, args: readonly string[]): { ok: boolean; output: string } {
  // In the child's environment, not on its command line (which every local account can read in /proc).
  const user = as ? { ETCDCTL_USER: `${as}:${readEtcdPassword(config, as)}` } : {};
  const run = spawnSync('etcdctl', ['--endpoints', config.consensus.endpoints.join(','), ...etcdctlTlsFlags(config), '--dial-timeout', '2s', '--command-timeout', '3s', ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3', ...user } });
  return { ok: run.status === 0, output: `${run.stdout ?? ''}${run.stderr ?? ''}` };
}

/**
 * Tries the writes that the two-administrator checks are about. `leader` is a lease (hex) with a key
 * under election/ca-site/, held by someone allowed to (an agent); returns which attempts succeeded.
 */
export function tryForbiddenWrites(config: FleetConfig, as: EtcdIdentity | undefined, leader: { lease: string }): Attempt[] {
  const p = config.consensus.prefix;
  const done: Attempt[] = [];
  const attempt = (what: Attempt, args: readonly string[]) => {
    const { ok, output } = etcdctl(config, as, args);
    // etcdctl del exits 0 having deleted nothing when the key is absent: count it only if it did delete.
    if (ok && !(args[0] === 'del' && output.trim() === '0')) done.push(what);
    // Refused by etcd, not lost on the way: anything else would make a pass meaningless.
    else if (!ok) assert.match(output, /permission denied|user name is empty|invalid auth token/i, `${what} as ${as ?? 'anonymous'}: refused for want of permission, not: ${output}`);
  };
  attempt('put unprotected', ['put', `${p}unprotected`, JSON.stringify({ since: new Date().toISOString(), by: 'attacker' })]);
  attempt('delete unprotected', ['del', `${p}unprotected`]);
  attempt('delete election key', ['del', `${p}election/${ELECTION}/${BigInt(`0x${leader.lease}`).toString()}`]);
  attempt('put vouch-floor', ['put', `${p}vouch-floor`, JSON.stringify({ site: 'a', lsn: 'FFFFFFFF/0', at: new Date().toISOString() })]);
  attempt('revoke leader lease', ['lease', 'revoke', leader.lease]);
  return done;
}

/** Without credentials, as the services or as the CLI: none of the writes above, and nothing changes. */
export async function assertOnlyAgentsWrite(config: FleetConfig, leader: { lease: string }): Promise<void> {
  const client = openConsensus(config, 'service');
  try {
    const reader = new CaSiteReader(client, config);
    const before = await reader.read();
    for (const as of [undefined, 'service', 'operator'] as const) assert.deepEqual(tryForbiddenWrites(config, as, leader), [], `${as ?? 'anonymous'} may do none of these`);
    const after = await reader.read();
    assert.equal(after.leader?.lease, before.leader?.lease, 'the leader kept its lease');
    assert.deepEqual(after.candidates, before.candidates, 'the election is as it was');
    assert.deepEqual(after.unprotected, before.unprotected, '`unprotected` is as it was');
  } finally {
    client.close();
  }
}

/** What the credentials are for still works: the services read, the CLI writes orders/ and drill; anonymous reads nothing. */
export async function assertNeededAccess(config: FleetConfig): Promise<void> {
  const p = config.consensus.prefix;
  assert.equal(etcdctl(config, undefined, ['get', '--prefix', p]).ok, false, 'anonymous reads nothing');
  for (const as of ['service', 'operator', 'agent-a', 'agent-b'] as const) {
    const client = openConsensus(config, as);
    try {
      await new CaSiteReader(client, config).read();
    } finally {
      client.close();
    }
  }
  const probe = `orders/probe-${process.pid}`;
  assert.equal(etcdctl(config, 'operator', ['put', `${p}${probe}`, '{}']).ok, true, 'the operator writes orders/');
  assert.equal(etcdctl(config, 'operator', ['del', `${p}${probe}`]).ok, true, 'and removes its own');
  assert.equal(etcdctl(config, 'service', ['put', `${p}${probe}`, '{}']).ok, false, 'the services write no order');
}
