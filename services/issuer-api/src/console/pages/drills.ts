import { html, type Html } from '../html.js';
import { csrfField, status, when } from '../layout.js';

export interface DrillView {
  id: string;
  kind: string;
  from: string | null;
  to: string | null;
  finishedAt: string;
  rtoSeconds: number | null;
  rpoLost: number | null;
  report: { timeline?: { at: string; event: string }[]; duplicate_serials?: number; batch_complete?: boolean } & Record<string, unknown>;
}

/**
 * A drill's timeline as a picture: events on a time axis (seconds from the first), drawn as SVG by the
 * server, with the same facts as a list beside it for screen readers and text browsers.
 */
function timeline(events: readonly { at: string; event: string }[], id: string): Html {
  if (events.length === 0) return html`<span class="hint">no timeline recorded</span>`;
  const t0 = Date.parse(events[0]!.at);
  const span = Math.max(1, Date.parse(events[events.length - 1]!.at) - t0);
  const width = 560;
  const x = (at: string) => 20 + ((Date.parse(at) - t0) / span) * (width - 40);
  const rows = events.map((e, i) => ({ ...e, x: x(e.at), y: 22 + i * 18, s: ((Date.parse(e.at) - t0) / 1000).toFixed(2) }));
  const height = 30 + events.length * 18;
  return html`<figure><svg role="img" aria-labelledby="tl-${id}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">
    <title id="tl-${id}">Timeline of drill ${id.slice(0, 8)}</title>
    <line x1="20" y1="10" x2="${width - 20}" y2="10" stroke="#4a525c" stroke-width="2"/>
    ${rows.map(
      (r) => html`<line x1="${r.x}" y1="4" x2="${r.x}" y2="${r.y - 4}" stroke="#0b5cad" stroke-width="2"/><circle cx="${r.x}" cy="10" r="4" fill="#0b5cad"/>
      <text x="${Math.min(r.x, width - 260)}" y="${r.y + 4}" font-size="12" fill="#1b1f24">+${r.s} s ${r.event}</text>`,
    )}
  </svg><figcaption><ol class="hint">${events.map((e) => html`<li>+${((Date.parse(e.at) - t0) / 1000).toFixed(2)} s (${when(e.at)}): ${e.event}</li>`)}</ol></figcaption></figure>`;
}

/** `csrf` is given when this person may start a drill here (an administrator, on a test deployment). */
export function drillsBody(drills: readonly DrillView[], csrf?: string): Html {
  const start = csrf
    ? html`<form method="post" action="/console/drills">${csrfField(csrf)}<label for="drill-approval">Approved drill.failover request</label>
    <p class="hint" id="drill-approval-hint">It kills this site's database and services mid-batch, so it takes two administrators: one requests it (<code>pnpm fleetpki approvals request drill.failover</code>), another approves it (Approvals), then either starts it here with the request's id. One drill at a time. The standby takes over and the figures appear here, on the site that is active afterwards.</p>
    <input id="drill-approval" name="approval" required maxlength="64" aria-describedby="drill-approval-hint" autocomplete="off">
    <p><button type="submit" class="danger">Run a failover drill (test deployment)</button></p></form>`
    : '';
  const intro = html`<p class="hint">Drills run from the CLI, where the sites are: <code>pnpm fleetpki drill failover</code>, <code>drill switchover --approval &lt;id&gt;</code>, <code>drill failback</code>, <code>drill restore --to-time &lt;T&gt;</code> and <code>drill disaster</code> (see the README and docs/backup.md). Each leaves its figures here.</p>${start}`;
  if (drills.length === 0) return html`${intro}<p>No drills recorded yet.</p>`;
  return html`${intro}${drills.map((d) => (d.kind === 'restore' ? restoreCard(d) : siteDrillCard(d)))}`;
}

function siteDrillCard(d: DrillView): Html {
  return html`<section class="card" aria-labelledby="drill-${d.id}" data-testid="drill"><h2 id="drill-${d.id}">${d.kind} ${d.from ?? '?'} → ${d.to ?? '?'}, ${when(d.finishedAt)}</h2>
    <dl class="facts"><dt>${d.kind === 'failover' ? 'RTO' : d.kind === 'disaster' ? 'Both sites lost to the first certificate' : 'Downtime'}</dt><dd>${d.rtoSeconds === null ? '—' : `${d.rtoSeconds} s`}</dd>
    <dt>RPO</dt><dd>${d.rpoLost === null ? '—' : d.rpoLost === 0 ? status('ok', '0 certificates lost') : status('bad', `${d.rpoLost} certificates lost`)}</dd>
    ${d.report.duplicate_serials !== undefined ? html`<dt>Duplicates</dt><dd>${d.report.duplicate_serials === 0 ? status('ok', 'none') : status('bad', String(d.report.duplicate_serials))}</dd>` : ''}
    ${d.report.batch_complete !== undefined ? html`<dt>Batch in flight</dt><dd>${d.report.batch_complete ? status('ok', 'completed on the new site') : status('bad', 'not completed')}</dd>` : ''}</dl>
    ${timeline(d.report.timeline ?? [], d.id)}</section>`;
}

/** A restore drill (`fleetpki drill restore`): what the backup gave back as of its target time. */
function restoreCard(d: DrillView): Html {
  const r = d.report as { target?: string; certificates_restored?: number; last_serial?: string | null; missing_from_restore?: number; removed_since_target?: number; verified?: boolean; backup?: string };
  return html`<section class="card" aria-labelledby="drill-${d.id}" data-testid="drill"><h2 id="drill-${d.id}">restore as of ${r.target ?? '?'}, ${when(d.finishedAt)}</h2>
    <dl class="facts"><dt>Restored in</dt><dd>${d.rtoSeconds === null ? '—' : `${d.rtoSeconds} s`} (from backup ${r.backup ?? '?'})</dd>
    <dt>Certificates</dt><dd>${String(r.certificates_restored ?? '?')}, the last ${r.last_serial ?? 'none'}</dd>
    <dt>Missing</dt><dd>${r.missing_from_restore === 0 ? status('ok', 'none') : status('bad', String(r.missing_from_restore ?? '?'))}</dd>
    <dt>Removed since</dt><dd>${String(r.removed_since_target ?? '?')}</dd>
    <dt>Verified</dt><dd>${r.verified ? status('ok', 'everything committed by the target is back; the audit chain verifies') : status('bad', 'no: see the report')}</dd></dl></section>`;
}
