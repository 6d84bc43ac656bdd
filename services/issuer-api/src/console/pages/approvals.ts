import { html, type Html } from '../html.js';
import { csrfField, status, when } from '../layout.js';

export interface ApprovalView {
  id: string;
  action: string;
  status: string;
  summary: string;
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  approvedBy?: string;
  approvedAt?: string;
  executedBy?: string;
  executedAt?: string;
  outcome?: Record<string, unknown>;
  /** An open bulk revocation, counted now. */
  wouldDo?: { certificates: number; alreadyRevoked: number; wouldRevoke: number; batches: { batchId: string | null; certificates: number }[] };
}

function wouldDo(w: NonNullable<ApprovalView['wouldDo']>): Html {
  return html`<p class="hint">Now: ${w.wouldRevoke} certificate(s) to revoke (${w.alreadyRevoked} already revoked)${
    w.batches.length ? html`, from ${w.batches.map((b, i) => html`${i ? ', ' : ''}${b.batchId ? html`batch <span class="mono">${b.batchId.slice(0, 8)}</span>` : 'online enrolment'} (${b.certificates})`)}` : ''
  }</p>`;
}

/** Approve and execute are offered where the API would allow them; the API still decides (two distinct people). */
export function approvalsBody(approvals: readonly ApprovalView[], me: string, csrf: string): Html {
  const open = approvals.filter((a) => a.status === 'pending' || a.status === 'approved');
  const rest = approvals.filter((a) => !open.includes(a));
  const row = (a: ApprovalView) => html`<tr data-approval="${a.id}">
    <td><span class="mono">${a.id.slice(0, 8)}</span><br><span class="hint">${a.action}</span></td>
    <td>${a.summary}${a.wouldDo ? wouldDo(a.wouldDo) : ''}</td>
    <td>${a.requestedBy}<br><span class="hint">${when(a.requestedAt)}</span></td>
    <td>${status(a.status === 'executed' ? 'ok' : a.status === 'pending' || a.status === 'approved' ? 'warn' : 'bad', a.status)}${a.approvedBy ? html`<br><span class="hint">approved by ${a.approvedBy}</span>` : ''}${a.executedBy ? html`<br><span class="hint">executed by ${a.executedBy}</span>` : ''}</td>
    <td>${
      a.status === 'pending'
        ? html`<form class="inline" method="post" action="/console/approvals/${a.id}/approve">${csrfField(csrf)}<button type="submit" aria-label="Approve request ${a.id.slice(0, 8)}: ${a.summary}">Approve</button></form>${a.requestedBy === me ? html`<p class="hint">Your own request: another person must approve it.</p>` : ''}`
        : a.status === 'approved'
          ? html`<form class="inline" method="post" action="/console/approvals/${a.id}/execute">${csrfField(csrf)}<button type="submit" class="danger" aria-label="Execute request ${a.id.slice(0, 8)}: ${a.summary}">Execute</button></form>`
          : a.outcome
            ? html`<span class="hint">${Object.entries(a.outcome)
                .filter(([, v]) => typeof v !== 'object')
                .map(([k, v]) => `${k}: ${String(v)}`)
                .join(', ')}</span>`
            : ''
    }</td></tr>`;
  const table = (rows: readonly ApprovalView[]) =>
    html`<table><thead><tr><th scope="col">Request</th><th scope="col">What it would do</th><th scope="col">Asked by</th><th scope="col">State</th><th scope="col">Action</th></tr></thead><tbody>${rows.map(row)}</tbody></table>`;
  return html`<p class="hint">Two people: the one who asked cannot approve. An approved request is executed once, by either.</p>
  <h2>Open</h2>${open.length ? table(open) : html`<p>No open requests.</p>`}
  <h2>Recent</h2>${rest.length ? table(rest) : html`<p>None.</p>`}`;
}
