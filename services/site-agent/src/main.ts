import { runService } from '@fleetpki/core';
import { checkEtcdTls, PatroniSiteAgent, SiteAgent } from '@fleetpki/sites';

// Thin entry point: this site's agent, one per site, started by `sites up`: beside Patroni
// (packages/sites/src/patroni-agent.ts) or running PostgreSQL's failover itself (site-agent.ts).
await runService('site-agent', async (config) => {
  // A wrong CA or client certificate towards etcd stops the agent here, naming the member (ETCD_TLS_*).
  await checkEtcdTls(config);
  const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
  const agent = config.databaseHa === 'patroni' ? new PatroniSiteAgent(config, config.site, log) : new SiteAgent(config, config.site, log);
  agent.start();
  return { close: () => agent.stop() };
});
