import { html, type Html } from '../html.js';
import { csrfField, status } from '../layout.js';

export const REASONS = ['keyCompromise', 'cessationOfOperation', 'superseded', 'affiliationChanged', 'privilegeWithdrawn', 'unspecified'] as const;

export interface RevocationForm {
  kind: 'serials' | 'devices' | 'batch';
  list: string;
  reason: string;
}

export interface RevocationPreviewView {
  certificates: number;
  alreadyRevoked: number;
  wouldRevoke: number;
  batches: { batchId: string | null; certificates: number }[];
  approvalRequired: boolean;
  threshold: number;
}

/** The form's list as the API body: one serial, EUI-64 or batch id per line (commas and spaces also split). */
export function revocationBody(form: RevocationForm): Record<string, unknown> {
  const items = form.list.split(/[\s,;]+/).filter(Boolean);
  if (form.kind === 'batch') return { batch: items[0] ?? '', reason: form.reason };
  return { [form.kind]: items, reason: form.reason };
}

export function revocationFormBody(form: RevocationForm, csrf: string, extra?: Html): Html {
  const option = (value: string, label: string) => html`<option value="${value}" ${form.kind === value ? html`selected` : ''}>${label}</option>`;
  return html`${extra ?? ''}<form method="post" action="/console/revocations" enctype="multipart/form-data">${csrfField(csrf)}
  <label for="kind">Revoke by</label>
  <select id="kind" name="kind">${option('devices', 'Devices (EUI-64): every certificate of each')}${option('serials', 'Certificate serial numbers (hex)')}${option('batch', 'A whole batch (its id)')}</select>
  <label for="list">Devices, serials or batch id</label>
  <p class="hint" id="list-hint">One per line (or separated by commas or spaces); paste a list exported from your inventory.</p>
  <textarea id="list" name="list" aria-describedby="list-hint">${form.list}</textarea>
  <label for="upload">Or a file with the list</label>
  <input id="upload" name="upload" type="file" accept=".txt,.csv,text/plain,text/csv">
  <label for="reason">Reason (RFC 5280)</label>
  <select id="reason" name="reason">${REASONS.map((r) => html`<option value="${r}" ${form.reason === r ? html`selected` : ''}>${r}</option>`)}</select>
  <p><button type="submit" name="step" value="preview" class="secondary">Preview: count certificates</button>
  <button type="submit" name="step" value="submit" class="danger">Request revocation</button></p></form>`;
}

export function previewBody(p: RevocationPreviewView): Html {
  return html`<section class="card" aria-labelledby="preview-h" data-testid="revocation-preview"><h2 id="preview-h">Preview: nothing has been revoked</h2>
  <p><strong>${p.wouldRevoke}</strong> certificate(s) would be revoked (${p.certificates} named, ${p.alreadyRevoked} already revoked).
  ${p.approvalRequired ? status('warn', `over the threshold of ${p.threshold}: a second person must approve`) : status('ok', 'within your threshold')}</p>
  ${p.batches.length ? html`<table><caption class="hint">By batch</caption><thead><tr><th scope="col">Batch</th><th scope="col" class="num">Certificates</th></tr></thead><tbody>${p.batches.map((b) => html`<tr><td class="mono">${b.batchId ?? 'online enrolment'}</td><td class="num">${b.certificates}</td></tr>`)}</tbody></table>` : ''}
  </section>`;
}
