import { html, type Html } from '../html.js';
import { status, when } from '../layout.js';

export interface BatchSummary {
  id: string;
  manufacturer: string;
  status: string;
  profile: string;
  devices: number;
  certificatesRequested: number;
  createdAt: string;
  completedAt: string | null;
}

export interface BatchDetail extends BatchSummary {
  issued: number;
  failed: number;
  chunks: { total: number; done: number; size: number };
  skippedLines: number;
  errors: { line: number; eui64: string; keyRole: string; code: string }[];
  certificatesPerSecond: number;
  etaSeconds: number | null;
  issuedOverTime: { at: string; issued: number }[];
}

/**
 * Certificates issued over time since the batch was accepted, as an SVG line the server draws (its
 * slope is the throughput); the figures beside it say the same in words.
 */
function throughputChart(b: BatchDetail): Html {
  const t0 = Date.parse(b.createdAt);
  const points = [{ t: 0, n: 0 }, ...b.issuedOverTime.map((p) => ({ t: (Date.parse(p.at) - t0) / 1000, n: p.issued }))];
  if (points.length < 2) return html`<p class="hint">The chart starts with the first finished chunk.</p>`;
  const [w, h, pad] = [560, 160, 36];
  const tMax = Math.max(1, points[points.length - 1]!.t);
  const nMax = Math.max(1, b.certificatesRequested);
  const x = (t: number) => pad + (t / tMax) * (w - pad - 10);
  const y = (n: number) => h - pad + 10 - (n / nMax) * (h - pad - 10);
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.n).toFixed(1)}`).join(' ');
  return html`<figure><svg role="img" aria-labelledby="chart-${b.id}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" xmlns="http://www.w3.org/2000/svg">
    <title id="chart-${b.id}">Certificates issued over time: ${points[points.length - 1]!.n} of ${b.certificatesRequested} after ${tMax.toFixed(0)} s</title>
    <line x1="${pad}" y1="${y(0)}" x2="${w - 10}" y2="${y(0)}" stroke="#4a525c"/><line x1="${pad}" y1="${y(0)}" x2="${pad}" y2="${y(nMax)}" stroke="#4a525c"/>
    <text x="${pad - 4}" y="${y(nMax) + 4}" font-size="11" text-anchor="end" fill="#1b1f24">${nMax}</text><text x="${pad - 4}" y="${y(0)}" font-size="11" text-anchor="end" fill="#1b1f24">0</text>
    <text x="${w - 10}" y="${h - 6}" font-size="11" text-anchor="end" fill="#1b1f24">${tMax.toFixed(0)} s</text><text x="${pad}" y="${h - 6}" font-size="11" fill="#1b1f24">0 s</text>
    <polyline points="${line}" fill="none" stroke="#0b5cad" stroke-width="2"/>
  </svg><figcaption class="hint">Certificates issued since the batch was accepted; the steeper, the faster.</figcaption></figure>`;
}

function batchStatus(s: string): Html {
  return status(s === 'complete' ? 'ok' : s === 'failed' ? 'bad' : 'warn', s);
}

export function batchListBody(batches: readonly BatchSummary[]): Html {
  if (batches.length === 0) return html`<p>No batches yet.</p>`;
  return html`<table><thead><tr><th scope="col">Batch</th><th scope="col">Manufacturer</th><th scope="col">Status</th><th scope="col" class="num">Devices</th><th scope="col">Profile</th><th scope="col">Accepted</th><th scope="col">Completed</th></tr></thead><tbody>
  ${batches.map(
    (b) => html`<tr><td><a href="/console/batches/${b.id}" class="mono">${b.id}</a></td><td>${b.manufacturer}</td><td>${batchStatus(b.status)}</td><td class="num">${b.devices}</td><td>${b.profile}</td><td>${when(b.createdAt)}</td><td>${when(b.completedAt)}</td></tr>`,
  )}</tbody></table>`;
}

/** The live part of a batch's page (re-fetched every 2 s while the batch runs). */
export function batchProgress(b: BatchDetail): Html {
  const finished = b.issued + b.failed;
  const final = b.status === 'complete' || b.status === 'failed';
  return html`<div id="progress" ${final ? html`data-final` : ''}>
  <p><label for="bar-${b.id}">Progress: <span data-testid="batch-issued">${b.issued}</span> of ${b.certificatesRequested} certificates issued${b.failed ? `, ${b.failed} failed` : ''}</label>
  <progress id="bar-${b.id}" max="${Math.max(1, b.certificatesRequested)}" value="${finished}">${finished}</progress></p>
  <dl class="facts">
    <dt>Status</dt><dd data-testid="batch-status">${batchStatus(b.status)}</dd>
    <dt>Chunks</dt><dd>${b.chunks.done} of ${b.chunks.total} done (${b.chunks.size} devices each)</dd>
    <dt>Rate</dt><dd>${b.certificatesPerSecond} certificates/s</dd>
    <dt>ETA</dt><dd>${b.etaSeconds === null ? '—' : b.etaSeconds === 0 ? 'done' : `${b.etaSeconds} s`}</dd>
  </dl>${throughputChart(b)}</div>`;
}

export function batchDetailBody(b: BatchDetail): Html {
  return html`<dl class="facts"><dt>Batch</dt><dd class="mono">${b.id}</dd><dt>Manufacturer</dt><dd>${b.manufacturer}</dd><dt>Profile</dt><dd>${b.profile}</dd><dt>Devices</dt><dd>${b.devices}</dd><dt>Accepted</dt><dd>${when(b.createdAt)}</dd><dt>Lines skipped at intake</dt><dd>${b.skippedLines}</dd></dl>
  <h2>Progress</h2>
  <div data-live="/console/batches/${b.id}/progress" aria-live="polite">${batchProgress(b)}</div>
  <h2>Results</h2>
  <p><a href="/v1/batches/${b.id}/results">Download results (NDJSON)</a> — certificates as they are issued; <code>pnpm fleetpki batch results ${b.id} --follow</code> does the same from a terminal.</p>
  <h2>Refused devices</h2>
  ${
    b.errors.length === 0
      ? html`<p>None.</p>`
      : html`<table><thead><tr><th scope="col" class="num">Line</th><th scope="col">EUI-64</th><th scope="col">Key</th><th scope="col">Code</th></tr></thead><tbody>${b.errors.map(
          (e) => html`<tr><td class="num">${e.line}</td><td class="mono">${e.eui64}</td><td>${e.keyRole}</td><td><code>${e.code}</code></td></tr>`,
        )}</tbody></table>`
  }`;
}
