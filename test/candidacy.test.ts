import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CaSiteReader, ELECTION, etcdctlTlsFlags, openConsensus, readEtcdPassword, type ConsensusClient } from '@fleetpki/consensus';
import type { FleetConfig } from '@fleetpki/core';
import { ensureAgent, failoverTo, stopAgent, waitForSyncStandby } from '@fleetpki/sites';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * The fault: a site's candidacy key is gone from etcd while its campaign still waits (its lease ran out
 * without the campaign hearing of it, or someone deleted the key). Such a campaign waits for an election
 * it is no longer in: when the leader's lease then went (a forced failover), the leader's agent
 * campaigned again and led on by default, and the failover never reached the standby. The agent checks
 * every step that its key is there and campaigns again when it is not. The key is deleted here with
 * etcdctl, behind the campaign's back, as a lost lease would (with an agent's etcd credential: since
 * issue 33 §2 nobody else may write the election's keys, test/etcd-auth.test.ts).
 */
function deleteCandidacyKey(config: FleetConfig, lease: string): void {
  const key = `${config.consensus.prefix}election/${ELECTION}/${BigInt(`0x${lease}`).toString()}`;
  // The credential in the child's environment, not on its command line (readable in /proc).
  const out = execFileSync('etcdctl', ['--endpoints', config.consensus.endpoints.join(','), ...etcdctlTlsFlags(config), 'del', key], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3', ETCDCTL_USER: `agent-a:${readEtcdPassword(config, 'agent-a')}` } });
  assert.equal(out.trim(), '1', `etcdctl deleted ${key}`);
}

async function leaderAndQueued(client: ConsensusClient, config: FleetConfig) {
  const reader = new CaSiteReader(client, config);
  return waitFor('a leader and a candidate queued behind it', async () => {
    const s = await reader.read();
    return s.leader && s.candidates.some((c) => c.lease !== s.leader!.lease) ? s : undefined;
  }, 60_000, 100);
}

describe('a candidacy whose key vanished from etcd', () => {
  it("is made again by the standby's agent within a few steps, behind the same leader", async () => {
    const config = await ensureSites();
    const client = openConsensus(config, 'service');
    try {
      const reader = new CaSiteReader(client, config);
      const before = await leaderAndQueued(client, config);
      const queued = before.candidates.filter((c) => c.lease !== before.leader!.lease).map((c) => c.lease);
      for (const lease of queued) deleteCandidacyKey(config, lease);
      assert.deepEqual((await reader.read()).candidates.map((c) => c.lease), [before.leader!.lease], 'only the leader is left in the election');
      const fresh = await waitFor('the standby queued again under a new lease', async () => {
        const s = await reader.read();
        const others = s.candidates.filter((c) => c.lease !== s.leader?.lease && !queued.includes(c.lease));
        return s.leader?.lease === before.leader!.lease && others.length > 0 ? others : undefined;
      }, 20_000, 100);
      assert.equal(fresh.length, 1, 'one new candidacy');
    } finally {
      client.close();
    }
  });

  it("a forced failover waits for the target's candidacy; with none it refuses and revokes nothing (the leader leads on)", async () => {
    // The fault: the leader's lease revoked while the standby was not queued yet (a moment after it
    // rejoined): the old leader's agent campaigned again first and led on; the failover timed out.
    const config = await ensureSites();
    const client = openConsensus(config, 'service');
    try {
      const before = await leaderAndQueued(client, config);
      const leaderSite = config.sites[before.leader!.site];
      const standby = config.sites[leaderSite.id === 'a' ? 'b' : 'a'];
      await stopAgent(standby);
      try {
        for (const c of before.candidates.filter((c) => c.site === standby.id)) deleteCandidacyKey(config, c.lease);
        await assert.rejects(failoverTo(config, standby, { force: true, candidacyTimeoutMs: 3_000 }), { code: 'SITE_NOT_CANDIDATE' });
        const after = await new CaSiteReader(client, config).read();
        assert.equal(after.leader?.lease, before.leader!.lease, 'the leader kept its lease');
      } finally {
        ensureAgent(config, standby);
      }
      await leaderAndQueued(client, config);
      await waitForSyncStandby(config, leaderSite, standby, 60_000);
    } finally {
      client.close();
    }
  });
});
