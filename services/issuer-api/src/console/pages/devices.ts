import { html, type Html } from '../html.js';
import { status, when } from '../layout.js';

export interface CertificateView {
  serial: string;
  eui64?: string;
  status?: string;
  revocation?: { reason: number; revokedAt: string };
  notBefore?: string;
  notAfter?: string;
  profile?: string;
  keyRole?: string;
  batch?: string | null;
}

export function searchForm(q: string): Html {
  return html`<form method="get" action="/console/devices" role="search"><label for="q">EUI-64 or certificate serial</label>
  <input id="q" name="q" type="search" value="${q}" autocomplete="off" spellcheck="false"> <button type="submit">Search</button></form>`;
}

export function certificatesBody(certs: readonly CertificateView[]): Html {
  if (certs.length === 0) return html`<p>No certificate found.</p>`;
  return html`<table><thead><tr><th scope="col">Serial</th><th scope="col">Device</th><th scope="col">Status</th><th scope="col">Validity</th><th scope="col">Download</th></tr></thead><tbody>${certs.map(
    (c) => html`<tr><td class="mono">${c.serial}</td><td class="mono">${c.eui64 ?? '—'}<br><span class="hint">${c.profile ?? ''} ${c.keyRole ?? ''}</span></td>
      <td>${c.revocation ? status('bad', `revoked ${when(c.revocation.revokedAt)} (reason ${c.revocation.reason})`) : status('ok', c.status ?? 'good')}</td>
      <td>${when(c.notBefore)}<br>${when(c.notAfter)}</td>
      <td>${(['pem', 'der', 'c509'] as const).map((f, i) => html`${i ? ' · ' : ''}<a href="/console/certificates/${c.serial}/download?format=${f}">${f.toUpperCase()}</a>`)}</td></tr>`,
  )}</tbody></table>`;
}
