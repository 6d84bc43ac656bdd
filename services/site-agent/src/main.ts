import { runService } from '@fleetpki/core';
import { SiteAgent } from '@fleetpki/sites';

// Thin entry point: this site's agent (packages/sites/src/site-agent.ts), one per site, started by `sites up`.
await runService('site-agent', async (config) => {
  const agent = new SiteAgent(config, config.site, (line) => console.log(`${new Date().toISOString()} ${line}`));
  agent.start();
  return { close: () => agent.stop() };
});
