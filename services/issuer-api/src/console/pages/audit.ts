import { html, type Html } from '../html.js';
import { status } from '../layout.js';

export interface AuditView {
  intact: boolean;
  rows: number;
  sealedUpTo: string | null;
  signedSeals: number;
  unsignedEarlySeals: number;
  problems: { kind: string; seq: string; detail: string }[];
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
  }</section>`;
}
