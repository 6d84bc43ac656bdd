import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { BlockList } from 'node:net';
import type { Registry } from 'prom-client';
import { mayScrape, SCRAPE_FORBIDDEN, scraperList } from './scrapers.js';
import { FleetError } from '@fleetpki/core';

/** Another path the listener answers besides /metrics (the daemons' /healthz). */
export type ExtraRoute = (request: IncomingMessage) => Promise<{ status: number; body: unknown } | undefined>;

/**
 * A listener of its own for a process without an HTTP server (daemons, batch worker, site agent):
 * GET /metrics, and what `extra` answers. Plain HTTP on the site's host, as Prometheus scrapes
 * node exporters; the figures are not secrets, and the listener accepts nothing that changes state.
 */
export async function serveMetrics(registry: Registry, host: string, port: number, extra?: ExtraRoute, scrapers: BlockList = scraperList()): Promise<Server> {
  const server = createServer((request, response) => {
    void (async () => {
      if (request.method === 'GET' && request.url === '/metrics') {
        if (!mayScrape(scrapers, request.socket.remoteAddress)) {
          response.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify(SCRAPE_FORBIDDEN));
          return;
        }
        response.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
        return;
      }
      const answer = extra ? await extra(request) : undefined;
      if (answer) response.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      else response.writeHead(404).end();
    })().catch(() => response.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return server;
}

/**
 * The port a process's metrics listener takes: FLEETPKI_METRICS_PORT when set (0: none), else the
 * configured one, else none. Tests that start many instances on one site set 0.
 */
export function metricsPort(configured: number | undefined, env: Record<string, string | undefined> = process.env): number | undefined {
  const raw = env.FLEETPKI_METRICS_PORT;
  if (raw === undefined || raw === '') return configured;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new FleetError('CONFIG_INVALID', `invalid configuration: FLEETPKI_METRICS_PORT "${raw}" is not a port number (0 for no metrics listener)`);
  return port === 0 ? undefined : port;
}
