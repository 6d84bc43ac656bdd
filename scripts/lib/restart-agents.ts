/**
 * Restarts both sites' agents, from the build or the sources as FLEETPKI_RUNTIME says (entryPoint):
 * scripts/test-compiled.sh runs the tests against agents from the build, then gives the sites their
 * usual ones back. Only the agents: PostgreSQL, Redis and etcd keep running, and the active site stays
 * the active site.
 *
 * The order matters. A stopped agent's campaign key stays in etcd until its lease runs out, and the
 * standby's agent queues behind the leader: restarting the leader's agent first (while the standby's old
 * campaign still queues) handed the role to the standby when the old leader key expired, and the tests
 * that followed found site A a standby (a CI run failed so). So: both agents stop; their campaign keys
 * run out (a lease time and a second); the active site's agent starts and, a primary with nobody leading,
 * campaigns at once and leads again; only then does the standby's agent start, queued behind it.
 */
import { loadConfig, runtimeSetting } from '@fleetpki/core';
import { currentRoles, ensureAgent, stopAgent, waitForActiveSite } from '@fleetpki/sites';

const config = loadConfig();
const { primary, standby } = currentRoles(config);
await stopAgent(standby);
await stopAgent(primary);
await new Promise((r) => setTimeout(r, (config.consensus.ttlSeconds + 1) * 1000));
ensureAgent(config, primary);
await waitForActiveSite(config, primary);
console.log(`site ${primary.id}: agent restarted (${runtimeSetting()}), still the active site`);
ensureAgent(config, standby);
console.log(`site ${standby.id}: agent restarted (${runtimeSetting()})`);
