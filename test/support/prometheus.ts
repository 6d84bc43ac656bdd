import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findRepoRoot } from '@fleetpki/core';
import { prometheusConfig, stopProcess, type ScrapeTarget } from '@fleetpki/sites';
import { waitFor } from './sites.js';

export type { ScrapeTarget };

export interface PrometheusAlert {
  readonly labels: Record<string, string>;
  readonly state: 'pending' | 'firing' | 'inactive';
}

/**
 * Debian's Prometheus, scraping `targets` every second with infra/prometheus/alerts.yml evaluated
 * every second: what an alert's expression says over the real processes, not over synthetic series.
 * `pending` means its expression holds now (its `for:` has not run out yet).
 */
export class TestPrometheus {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly url: string,
  ) {}

  static async start(port: number, targets: readonly ScrapeTarget[]): Promise<TestPrometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-prometheus-'));
    copyFileSync(join(findRepoRoot(), 'infra', 'prometheus', 'alerts.yml'), join(dir, 'alerts.yml'));
    writeFileSync(join(dir, 'prometheus.yml'), prometheusConfig(targets, 1));
    const child = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(`Prometheus on ${url}`, async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${stderr}`);
        return (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) || undefined;
      }, 30_000, 200);
    } catch (err) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new TestPrometheus(child, dir, url);
  }

  /** The alerts pending or firing now. */
  async alerts(): Promise<PrometheusAlert[]> {
    const body = (await (await fetch(`${this.url}/api/v1/alerts`)).json()) as { data: { alerts: PrometheusAlert[] } };
    return body.data.alerts;
  }

  /** Waits until `alertname` is pending or firing with every label of `labels`; returns it. */
  async waitForAlert(alertname: string, labels: Record<string, string>, timeoutMs: number): Promise<PrometheusAlert> {
    return waitFor(`alert ${alertname} ${JSON.stringify(labels)} pending or firing`, async () => (await this.alerts()).find((a) => a.labels.alertname === alertname && Object.entries(labels).every(([k, v]) => a.labels[k] === v)), timeoutMs, 500);
  }

  /** An instant query's vector: each series' labels and value. */
  async query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
    const body = (await (await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as { status: string; error?: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
