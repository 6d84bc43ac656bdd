/**
 * Restarts both sites' agents, from the build or the sources as FLEETPKI_RUNTIME says (entryPoint):
 * scripts/test-compiled.sh runs the tests against agents from the build, then gives the sites their
 * usual ones back. Only the agents: PostgreSQL, Redis and etcd keep running.
 */
import { loadConfig, runtimeSetting } from '@fleetpki/core';
import { ensureAgent, stopAgent } from '@fleetpki/sites';

const config = loadConfig();
for (const site of Object.values(config.sites)) {
  await stopAgent(site);
  ensureAgent(config, site);
  console.log(`site ${site.id}: agent restarted (${runtimeSetting()})`);
}
