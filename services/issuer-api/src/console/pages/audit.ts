import { html, type Html } from '../html.js';
import { status, when } from '../layout.js';

export interface AuditView {
  intact: boolean;
  rows: number;
  sealedUpTo: string | null;
  signedSeals: number;
  unsignedEarlySeals: number;
  problems: { kind: string; seq: string; detail: string }[];
  recentSeals: { seq: string; rows: number; sealedAt: string; keyId: string | null }[];
}

export function auditBody(result: AuditView | undefined): Html {
  const form = html`<form method="get" action="/console/audit"><input type="hidden" name="verify" value="1"><button type="submit">Verify the chain now</button></form>
  <p class="hint">The same check as <code>pnpm fleetpki audit verify</code>: the hash chain recomputed over every row, the seals, their HSM signatures and the checkpoint file outside the database. Someone who distrusts the database as well runs the CLI with <code>--root</code> and their own copy of the root certificate.</p>`;
  if (!result) return form;
  return html`${form}<section class="card" aria-labelledby="audit-result" data-testid="audit-result"><h2 id="audit-result">${result.intact ? status('ok', 'The chain is intact') : status('bad', `${result.problems.length} problem(s) found`)}</h2>
  <dl class="facts"><dt>Rows</dt><dd>${result.rows}</dd><dt>Sealed up to</dt><dd>seq ${result.sealedUpTo ?? '—'}</dd><dt>Signed seals</dt><dd>${result.signedSeals}${result.unsignedEarlySeals ? ` (${result.unsignedEarlySeals} from before signing began)` : ''}</dd></dl>
  ${
    result.problems.length
      ? html`<table><thead><tr><th scope="col">Kind</th><th scope="col">Seq</th><th scope="col">Detail</th></tr></thead><tbody>${result.problems.slice(0, 200).map((p) => html`<tr><td>${status('bad', p.kind)}</td><td class="num">${p.seq}</td><td>${p.detail}</td></tr>`)}</tbody></table>`
      : ''
  }</section>
  <h2>Recent seals</h2>
  ${
    result.recentSeals.length
      ? html`<table><thead><tr><th scope="col" class="num">Up to seq</th><th scope="col" class="num">Rows</th><th scope="col">Sealed</th><th scope="col">Signed by audit key</th></tr></thead><tbody>${result.recentSeals.map(
          (s) => html`<tr><td class="num">${s.seq}</td><td class="num">${s.rows}</td><td>${when(s.sealedAt)}</td><td class="mono">${s.keyId ? s.keyId.slice(0, 16) : status('warn', 'unsigned')}</td></tr>`,
        )}</tbody></table>`
      : html`<p>No seals yet.</p>`
  }`;
}
