import pino from 'pino';
import { runService } from '@fleetpki/core';
import { metricsPort, processRegistry, scraperList, serveMetrics, siteFiguresMetrics } from '@fleetpki/metrics';
import { checkEtcdTls, PatroniSiteAgent, SiteAgent, siteFiguresReader } from '@fleetpki/sites';

// Thin entry point: this site's agent, one per site, started by `sites up`: beside Patroni
// (packages/sites/src/patroni-agent.ts) or running PostgreSQL's failover itself (site-agent.ts).
// sites.<id>.metrics.agent (or FLEETPKI_METRICS_PORT) serves its site's figures: replication, the WAL
// archive, the audit seals, the last drills (docs/metrics.md).
await runService('site-agent', async (config) => {
  // A wrong CA or client certificate towards etcd stops the agent here, naming the member (ETCD_TLS_*).
  await checkEtcdTls(config);
  // One JSON line per event (pino), as every service logs; its file (sites up) or the journal (units)
  // keeps them. Always at info: each line is a decision about the site's role (promoted, fenced,
  // rejoined), which log.level (the services' request logs) must not silence.
  const logger = pino({ name: 'site-agent', level: 'info', base: { site: config.site, pid: process.pid } });
  const log = (line: string) => logger.info(line);
  const agent = config.databaseHa === 'patroni' ? new PatroniSiteAgent(config, config.site, log) : new SiteAgent(config, config.site, log);
  const port = metricsPort(config.sites[config.site].metrics.agent);
  const figures = port === undefined ? undefined : siteFiguresReader(config);
  let server: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  if (figures && port !== undefined) {
    const registry = processRegistry('site-agent', config.site);
    siteFiguresMetrics(registry, () => figures.read());
    // The agent runs the site's role whatever happens to its metrics: a port taken is logged, not fatal
    // (Prometheus's `up` shows the scrape failing; FleetpkiTargetDown).
    server = await serveMetrics(registry, config.sites[config.site].host, port, undefined, scraperList(config.sites[config.site].metrics.scrapers)).catch((err: unknown) => {
      log(`metrics: METRICS_LISTEN_FAILED: cannot listen on ${config.sites[config.site].host}:${port} (${(err as Error).message}); the agent runs without its metrics listener`);
      return undefined;
    });
  }
  agent.start();
  return {
    async close() {
      server?.close();
      await agent.stop();
      await figures?.close();
    },
  };
});
