// pnpm docs:prometheus: screenshots of the local Prometheus's graph and alerts pages (docs/prometheus/),
// taken after `pnpm -s fleetpki sites up --prometheus` and `pnpm demo`, so that they show a demo run:
// the batch's certificates/s, the HSM's signatures, the CRLs' time left, and the alerts as evaluated.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { findRepoRoot } from '@fleetpki/core';
import { LOCAL_PROMETHEUS_PORT } from '@fleetpki/sites';

const base = `http://127.0.0.1:${LOCAL_PROMETHEUS_PORT}`;
const out = join(findRepoRoot(), 'docs', 'prometheus');
// One graph panel per expression, over the last 10 minutes (the classic UI's URL parameters).
const graphs = [
  'sum by (process) (rate(fleetpki_batch_certificates_total[1m]))',
  'sum by (process, kind) (rate(fleetpki_hsm_operations_total[1m]))',
  'min by (ca, kind) (fleetpki_crl_next_update_seconds_left) / 3600',
  'max by (site, process) (fleetpki_site_active)',
];

const ready = await fetch(`${base}/-/ready`).then((r) => r.ok, () => false);
if (!ready) {
  console.error(`prometheus-screenshots: no Prometheus on ${base}: run \`pnpm -s fleetpki sites up --prometheus\` and \`pnpm demo\` first`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  const query = graphs.map((expr, i) => `g${i}.expr=${encodeURIComponent(expr)}&g${i}.tab=0&g${i}.range_input=10m`).join('&');
  await page.goto(`${base}/classic/graph?${query}`, { waitUntil: 'networkidle' });
  // The navigation bar is fixed at the top: in a full-page picture it would sit across the middle.
  await page.addStyleTag({ content: 'nav { position: static !important; }' });
  await page.waitForTimeout(2_000);
  await page.screenshot({ path: join(out, 'graph.png'), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 1000 });
  // Debian builds the classic web UI only (its newer UI is not packaged): /classic/alerts.
  await page.goto(`${base}/classic/alerts`, { waitUntil: 'networkidle' });
  await page.waitForTimeout(1_000);
  await page.screenshot({ path: join(out, 'alerts.png'), fullPage: true });
  console.log(`docs/prometheus: graph.png alerts.png (from ${base})`);
} finally {
  await browser.close();
}
