import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError, SITE_IDS, type FleetConfig, type SiteId } from '@fleetpki/core';
import { livePid, removePidFile, writePidFile } from './pid-file.js';

/** Where the local simulation's Prometheus listens (`sites up --prometheus`). */
export const LOCAL_PROMETHEUS_PORT = 19090;

/**
 * The metrics ports `pnpm demo` gives the processes it starts on site a (two batch workers, the daemons
 * of the batch and of the status jobs): the simulation configures none for daemons and workers, since
 * tests start several per site. The local Prometheus scrapes these too.
 */
export const DEMO_METRICS_PORTS = { daemonsBatch: 18100, worker1: 18101, worker2: 18103, daemonsStatus: 18104 } as const;

function dir(config: FleetConfig): string {
  return join(config.stateDir, 'prometheus');
}

/** A scrape target: host:port of a /metrics endpoint, and the site and process its `up` is labelled with. */
export interface ScrapeTarget {
  readonly address: string;
  readonly site: string;
  readonly process: string;
  readonly scheme?: 'http' | 'https';
  /** The CA bundle that checks an https target's certificate. */
  readonly caFile?: string;
}

/**
 * Prometheus's configuration for `targets`, scraped and evaluated every `everySeconds` with the rules of
 * alerts.yml beside it (the local Prometheus, and the tests' own). The processes label their series
 * themselves (honor_labels); the target's labels are what `up` gets. JSON is YAML: no YAML writer.
 */
export function prometheusConfig(targets: readonly ScrapeTarget[], everySeconds: number): string {
  const every = `${everySeconds}s`;
  const scrapeConfigs = targets.map((t, i) => ({
    job_name: `${t.process}-${t.site}-${i}`,
    scheme: t.scheme ?? 'http',
    honor_labels: true,
    ...(t.caFile ? { tls_config: { ca_file: t.caFile } } : {}),
    static_configs: [{ targets: [t.address], labels: { site: t.site, process: t.process } }],
  }));
  return JSON.stringify({ global: { scrape_interval: every, evaluation_interval: every, scrape_timeout: every }, rule_files: ['alerts.yml'], scrape_configs: scrapeConfigs }, null, 2);
}

/** The scrape targets of the local two sites: every process's metrics, labelled with its site and process. */
export function localScrapeTargets(config: FleetConfig): { address: string; site: SiteId; process: string; scheme: 'http' | 'https' }[] {
  const targets: { address: string; site: SiteId; process: string; scheme: 'http' | 'https' }[] = [];
  for (const id of SITE_IDS) {
    const s = config.sites[id];
    const api = new URL(s.apiUrl);
    const status = new URL(s.statusUrl);
    targets.push({ address: api.host, site: id, process: 'issuer-api', scheme: api.protocol === 'https:' ? 'https' : 'http' });
    targets.push({ address: status.host, site: id, process: 'status-responder', scheme: status.protocol === 'https:' ? 'https' : 'http' });
    if (s.metrics.agent !== undefined) targets.push({ address: `${s.host}:${s.metrics.agent}`, site: id, process: 'site-agent', scheme: 'http' });
    if (s.metrics.daemons !== undefined) targets.push({ address: `${s.host}:${s.metrics.daemons}`, site: id, process: 'daemons', scheme: 'http' });
    if (s.metrics.worker !== undefined) targets.push({ address: `${s.host}:${s.metrics.worker}`, site: id, process: 'batch-worker', scheme: 'http' });
  }
  const a = config.sites.a.host;
  targets.push(
    { address: `${a}:${DEMO_METRICS_PORTS.daemonsBatch}`, site: 'a', process: 'daemons', scheme: 'http' },
    { address: `${a}:${DEMO_METRICS_PORTS.daemonsStatus}`, site: 'a', process: 'daemons', scheme: 'http' },
    { address: `${a}:${DEMO_METRICS_PORTS.worker1}`, site: 'a', process: 'batch-worker', scheme: 'http' },
    { address: `${a}:${DEMO_METRICS_PORTS.worker2}`, site: 'a', process: 'batch-worker', scheme: 'http' },
  );
  return targets.filter((t, i) => targets.findIndex((u) => u.address === t.address) === i);
}

/**
 * Starts Debian's Prometheus for the local sites (a no-op when it runs): scraping every process each
 * 5 s with the alert rules of infra/prometheus/alerts.yml, on 127.0.0.1:19090, its data in the state
 * folder. For a trial: real graphs and alerts over a demo run. Production scrapes with its own
 * Prometheus (infra/prometheus/prometheus.yml is the example).
 */
export function ensureLocalPrometheus(config: FleetConfig): { state: 'started' | 'running'; url: string } {
  const url = `http://127.0.0.1:${LOCAL_PROMETHEUS_PORT}`;
  const pidFile = join(dir(config), 'prometheus.pid');
  if (livePid(pidFile) !== undefined) return { state: 'running', url };
  if (config.simulation.netns) throw new FleetError('SITES_PROMETHEUS_NETNS', "the local Prometheus scrapes the loopback simulation only; with network namespaces (FLEETPKI_NETNS=on) run a Prometheus that reaches the sites' addresses (infra/prometheus/prometheus.yml)");
  mkdirSync(dir(config), { recursive: true });
  copyFileSync(join(config.repoRoot, 'infra', 'prometheus', 'alerts.yml'), join(dir(config), 'alerts.yml'));
  const ca = config.tls.caBundle;
  writeFileSync(join(dir(config), 'prometheus.yml'), prometheusConfig(localScrapeTargets(config).map((t) => ({ ...t, ...(t.scheme === 'https' && ca ? { caFile: ca } : {}) })), 5));
  const log = openSync(join(dir(config), 'prometheus.log'), 'a');
  try {
    const child = spawn('prometheus', [`--config.file=${join(dir(config), 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir(config), 'data')}`, `--web.listen-address=127.0.0.1:${LOCAL_PROMETHEUS_PORT}`, '--storage.tsdb.retention.time=7d'], { detached: true, stdio: ['ignore', log, log] });
    child.once('error', () => undefined);
    if (child.pid === undefined) throw new FleetError('SITES_PROMETHEUS_MISSING', 'prometheus could not be started: run scripts/setup.sh (Debian package prometheus)');
    child.unref();
    writePidFile(pidFile, child.pid);
  } finally {
    closeSync(log);
  }
  return { state: 'started', url };
}

/** Stops the local Prometheus if it runs (sites down). */
export async function stopLocalPrometheus(config: FleetConfig): Promise<void> {
  const pidFile = join(dir(config), 'prometheus.pid');
  const pid = livePid(pidFile);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && livePid(pidFile) !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
  if (livePid(pidFile) !== undefined) process.kill(pid, 'SIGKILL');
  removePidFile(pidFile);
}
