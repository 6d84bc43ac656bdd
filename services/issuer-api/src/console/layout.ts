import type { Principal, Role } from '@fleetpki/ca';
import { html, type Html } from './html.js';

/** The console's screens, and who sees each in the menu (the API refuses the rest anyway). */
const SCREENS: readonly { path: string; label: string; roles: readonly Role[] }[] = [
  { path: '/console', label: 'Overview', roles: ['revocation-officer', 'auditor', 'administrator', 'custodian'] },
  { path: '/console/batches', label: 'Batches', roles: ['factory', 'auditor', 'administrator'] },
  { path: '/console/approvals', label: 'Approvals', roles: ['revocation-officer', 'auditor', 'administrator', 'custodian'] },
  { path: '/console/revocations', label: 'Revoke', roles: ['revocation-officer', 'administrator'] },
  { path: '/console/devices', label: 'Devices', roles: ['factory', 'revocation-officer', 'auditor', 'administrator'] },
  { path: '/console/audit', label: 'Audit', roles: ['auditor', 'administrator', 'custodian'] },
  { path: '/console/drills', label: 'Drills', roles: ['auditor', 'administrator', 'custodian'] },
];

/** The first screen a role may see: where sign-in lands. */
export function homeFor(role: Role): string {
  return SCREENS.find((s) => s.roles.includes(role))?.path ?? '/console/devices';
}

export interface PageContext {
  readonly principal: Principal;
  readonly csrf: string;
  /** The path of the screen (highlighted in the menu). */
  readonly current: string;
}

export function page(title: string, body: Html, context?: PageContext): string {
  const nav = context
    ? html`<nav aria-label="Console"><ul>${SCREENS.filter((s) => s.roles.includes(context.principal.role)).map(
        (s) => html`<li><a href="${s.path}" ${context.current === s.path ? html`aria-current="page"` : ''}>${s.label}</a></li>`,
      )}</ul></nav>
      <div class="who"><span>${context.principal.name} · ${context.principal.role}${context.principal.manufacturerId ? ` of ${context.principal.manufacturerId}` : ''}</span>
        <form class="inline" method="post" action="/console/sign-out"><input type="hidden" name="_csrf" value="${context.csrf}"><button type="submit">Sign out</button></form></div>`
    : '';
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · fleetpki console</title><link rel="stylesheet" href="/console/assets/console.css"><script src="/console/assets/console.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a><header><span class="brand">fleetpki</span>${nav}</header>
<main id="main"><h1>${title}</h1>${body}</main></body></html>`.value;
}

/** A refusal as the API gave it: its stable code and message. */
export function problem(error: { code: string; message: string } | undefined, fallback = 'the request failed'): Html {
  return html`<div class="alert" role="alert"><strong>${error?.code ?? 'ERROR'}</strong>: ${error?.message ?? fallback}</div>`;
}

export function notice(text: string): Html {
  return html`<div class="notice" role="status">${text}</div>`;
}

export function status(kind: 'ok' | 'bad' | 'warn', text: string): Html {
  return html`<span class="status ${kind}">${text}</span>`;
}

export function csrfField(csrf: string): Html {
  return html`<input type="hidden" name="_csrf" value="${csrf}">`;
}

export function when(iso: unknown): string {
  if (typeof iso !== 'string') return '—';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
