import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CaSiteReader, ELECTION, openConsensus } from '@fleetpki/consensus';
import { ensureSites, waitFor } from './support/sites.js';

/**
 * The fault: a site's candidacy key is gone from etcd while its campaign still waits (its lease ran out
 * without the campaign hearing of it, or someone deleted the key). Such a campaign waits for an election
 * it is no longer in: when the leader's lease then went (a forced failover), the leader's agent
 * campaigned again and led on by default, and the failover never reached the standby. The agent checks
 * every step that its key is there and campaigns again when it is not. The key is deleted here with
 * etcdctl, behind the campaign's back, as an operator or a lost lease would.
 */
describe('a candidacy whose key vanished from etcd', () => {
  it("is made again by the standby's agent within a few steps, behind the same leader", async () => {
    const config = await ensureSites();
    const client = openConsensus(config);
    try {
      const reader = new CaSiteReader(client, config);
      const before = await waitFor('a leader and a candidate queued behind it', async () => {
        const s = await reader.read();
        return s.leader && s.candidates.some((l) => l !== s.leader!.lease) ? s : undefined;
      }, 60_000, 100);
      const queued = before.candidates.filter((l) => l !== before.leader!.lease);
      for (const lease of queued) {
        const key = `${config.consensus.prefix}election/${ELECTION}/${BigInt(`0x${lease}`).toString()}`;
        const out = execFileSync('etcdctl', ['--endpoints', config.consensus.endpoints.join(','), 'del', key], { encoding: 'utf8' });
        assert.equal(out.trim(), '1', `etcdctl deleted ${key}`);
      }
      assert.deepEqual((await reader.read()).candidates, [before.leader!.lease], 'only the leader is left in the election');
      const fresh = await waitFor('the standby queued again under a new lease', async () => {
        const s = await reader.read();
        const others = s.candidates.filter((l) => l !== s.leader?.lease && !queued.includes(l));
        return s.leader?.lease === before.leader!.lease && others.length > 0 ? others : undefined;
      }, 20_000, 100);
      assert.equal(fresh.length, 1, 'one new candidacy');
    } finally {
      client.close();
    }
  });
});
