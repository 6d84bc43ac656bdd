import { runService } from '@fleetpki/core';
import { checkEtcdTls, SiteAgent } from '@fleetpki/sites';

// Thin entry point: this site's agent (packages/sites/src/site-agent.ts), one per site, started by `sites up`.
await runService('site-agent', async (config) => {
  // A wrong CA or client certificate towards etcd stops the agent here, naming the member (ETCD_TLS_*).
  await checkEtcdTls(config);
  const agent = new SiteAgent(config, config.site, (line) => console.log(`${new Date().toISOString()} ${line}`));
  agent.start();
  return { close: () => agent.stop() };
});
