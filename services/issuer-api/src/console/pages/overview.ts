import { html, type Html } from '../html.js';
import { status, when } from '../layout.js';

interface SiteView {
  site?: string;
  reachable?: boolean;
  role?: string;
  issuing?: boolean;
  status?: string;
  message?: string;
  lease?: { role?: string; reason?: string; epoch?: number | null; streaming?: boolean | null } | null;
  hsm?: { ok?: boolean; detail?: string };
  writesBlockedSince?: string | null;
}

interface ReplicationView {
  standbys: { name: string; state: string | null; sync: string | null; replayLagBytes: number; replayLagSeconds: number | null }[];
  replayLagBytes: number | null;
  lastReplaySecondsAgo: number | null;
}

export interface Overview {
  site: SiteView;
  replication: ReplicationView | null;
  otherSite: SiteView;
  ca: { id: string; crl: { shards: number; entries: number; oldestThisUpdate: string | null; earliestNextUpdate: string | null }; ocsp: { notPreProducedLastDay: number; revocationsNotResignedLastDay: number } };
  queue: { chunksWaiting: number | null; workers: number | null };
}

function siteCard(title: string, s: SiteView): Html {
  const healthy = s.reachable !== false && s.hsm?.ok !== false && !s.writesBlockedSince && s.status !== 'not-ready';
  return html`<section class="card" aria-labelledby="site-${s.site ?? title}"><h2 id="site-${s.site ?? title}">${title}: site ${s.site ?? '?'} ${healthy ? status('ok', s.role ?? 'up') : status('bad', s.reachable === false ? 'unreachable' : (s.role ?? 'not ready'))}</h2>
  ${
    s.reachable === false
      ? html`<p>${s.message ?? 'no answer'}</p>`
      : html`<dl class="facts">
    <dt>Role</dt><dd>${s.role ?? '—'}${s.issuing ? ' (issuing)' : ''}</dd>
    <dt>Lease</dt><dd>${s.lease ? `${s.lease.role ?? '—'}, epoch ${s.lease.epoch ?? '—'}` : '—'}${s.lease?.streaming === false ? html` ${status('bad', 'not streaming')}` : ''}</dd>
    <dt>HSM</dt><dd>${s.hsm?.ok ? status('ok', 'ready') : status('bad', 'not ready')} ${s.hsm?.detail ?? ''}</dd>
    <dt>Writes</dt><dd>${s.writesBlockedSince ? status('bad', `blocked since ${when(s.writesBlockedSince)}: synchronous standby unreachable`) : s.status === 'not-ready' ? status('bad', s.message ?? 'not ready') : status('ok', 'flowing')}</dd>
  </dl>`
  }</section>`;
}

function replication(r: ReplicationView | null, role: string | undefined): Html {
  if (!r) return html`<p>${status('bad', 'replication unknown')} the database did not say</p>`;
  if (role === 'standby') return html`<p>Replay lag on this standby: ${r.replayLagBytes ?? 0} bytes${r.lastReplaySecondsAgo !== null ? `, last transaction replayed ${r.lastReplaySecondsAgo.toFixed(1)} s ago` : ''}</p>`;
  if (r.standbys.length === 0) return html`<p>${status('bad', 'no standby streaming')} writes wait for a synchronous standby, or run unprotected</p>`;
  return html`<table><caption class="hint">Standbys streaming from this site</caption><thead><tr><th scope="col">Standby</th><th scope="col">State</th><th scope="col">Mode</th><th scope="col" class="num">Replay lag</th></tr></thead><tbody>${r.standbys.map(
    (s) => html`<tr><td>${s.name}</td><td>${s.state === 'streaming' ? status('ok', 'streaming') : status('bad', s.state ?? 'unknown')}</td><td>${s.sync ?? '—'}</td><td class="num">${s.replayLagBytes} bytes${s.replayLagSeconds !== null ? `, ${s.replayLagSeconds.toFixed(3)} s` : ''}</td></tr>`,
  )}</tbody></table>`;
}

export function overviewBody(o: Overview): Html {
  const nextUpdate = o.ca.crl.earliestNextUpdate ? Date.parse(o.ca.crl.earliestNextUpdate) : NaN;
  const crlLate = Number.isFinite(nextUpdate) && nextUpdate < Date.now();
  const backlog = o.ca.ocsp.notPreProducedLastDay + o.ca.ocsp.revocationsNotResignedLastDay;
  return html`<div class="cards">${siteCard('This site', o.site)}${siteCard('Other site', o.otherSite)}</div>
  <h2>Replication</h2>${replication(o.replication, o.site.role)}
  <h2>Issuing CA <code>${o.ca.id}</code></h2>
  <table><caption class="hint">Status publication</caption><thead><tr><th scope="col">What</th><th scope="col">State</th></tr></thead><tbody>
    <tr><td>CRL shards</td><td>${o.ca.crl.shards} shards, ${o.ca.crl.entries} entries; oldest published ${when(o.ca.crl.oldestThisUpdate)}; next update due ${when(o.ca.crl.earliestNextUpdate)} ${crlLate ? status('bad', 'overdue') : status('ok', 'current')}</td></tr>
    <tr><td>OCSP pre-production (last day)</td><td>${o.ca.ocsp.notPreProducedLastDay} certificates without a response yet; ${o.ca.ocsp.revocationsNotResignedLastDay} revocations not re-signed ${backlog > 0 ? status('warn', 'backlog') : status('ok', 'none waiting')}</td></tr>
    <tr><td>Batch queue</td><td>${o.queue.chunksWaiting === null ? status('bad', 'queue unreachable') : html`${o.queue.chunksWaiting} chunks waiting or running; ${o.queue.workers ?? '?'} workers connected ${o.queue.workers === 0 && o.queue.chunksWaiting > 0 ? status('bad', 'nobody is working the queue') : ''}`}</td></tr>
  </tbody></table>`;
}
