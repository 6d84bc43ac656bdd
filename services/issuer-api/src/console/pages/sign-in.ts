import { html, type Html } from '../html.js';
import { csrfField } from '../layout.js';

/** Over TLS, `csrf` is the token of this browser's pre-session (login CSRF), carried by every form. */
export function signInBody(options: { tls: false } | { tls: true; csrf: string; certificate?: { subject: string }; error?: Html }): Html {
  if (!options.tls) {
    return html`<div class="alert" role="alert"><strong>CONSOLE_TLS_REQUIRED</strong>: the console signs in only over HTTPS (its session cookie is Secure). Run the API with <code>FLEETPKI_API_TLS=on</code> after <code>pnpm fleetpki tls server</code>.</div>`;
  }
  const csrf = csrfField(options.csrf);
  return html`${options.error ?? ''}
  ${
    options.certificate
      ? html`<form method="post" action="/console/sign-in">${csrf}<input type="hidden" name="method" value="certificate"><p>Your browser presented the client certificate of <strong>${options.certificate.subject}</strong>.</p><button type="submit">Sign in with this certificate</button></form><h2>Or with an API token</h2>`
      : ''
  }
  <form method="post" action="/console/sign-in">${csrf}<label for="token">API token</label>
  <p class="hint" id="token-hint">The token <code>pnpm fleetpki tokens create</code> gave you (it starts with <code>fpk_</code>). It is not kept in the browser: you get a session that ends after a quarter of an hour without use.</p>
  <input id="token" name="token" type="password" autocomplete="off" aria-describedby="token-hint" required>
  <p><button type="submit">Sign in</button></p></form>`;
}
