// The issuer API and the status responder over HTTPS (issue 34): whether each serves it, and the checks
// that keep a configuration from leaving a part, or a client of it, on plain HTTP by accident.
import { FleetError } from '../errors.js';
import type { Deployment } from './schema.js';
import type { SimulationNet } from './types.js';

const refuse = (message: string) => new FleetError('CONFIG_INVALID', `invalid configuration: ${message}`);

/** A key as an operator finds it: the variable that set it, or its path in the file. */
type NameOf = (key: string) => string;

/**
 * Where plain HTTP may still carry tokens and operator endpoints: loopback, or the simulation's
 * namespaces' private link, which never leaves this machine.
 */
export function isLocalOnly(host: string, sim: SimulationNet): boolean {
  return ['127.0.0.1', '::1', 'localhost'].includes(host) || (sim.netns && Object.values(sim.hosts).includes(host));
}

/**
 * Whether the issuer API serves HTTPS: api.tls as written, else exactly when tls.api names the server's
 * pair. api.tls false with tls.api named is a contradiction, refused rather than guessed at (a plain API
 * where the operator meant HTTPS would carry tokens in clear).
 */
export function apiServesHttps(d: Deployment, nameOf: NameOf): boolean {
  if (d.api.tls === false && d.tls.api) throw refuse(`${nameOf('api.tls')} is off but tls.api names the API's server certificate; drop one of them (no plaintext fallback)`);
  return d.api.tls ?? d.tls.api !== undefined;
}

/** Whether the status responders serve HTTPS (their operator endpoints always; OCSP and CRLs too, beside sites.<id>.status.httpPort). */
export function statusServesHttps(d: Deployment): boolean {
  return d.tls.status !== undefined;
}

/**
 * tls.api and tls.status need tls.caBundle: every internal client checks these servers against it (and
 * the API checks client certificates against it), so without one a client could only trust blindly.
 */
export function checkHttpsMaterial(d: Deployment): void {
  const named = (['api', 'status'] as const).filter((part) => d.tls[part] !== undefined);
  if (named.length > 0 && !d.tls.caBundle) throw refuse(`${named.map((p) => `tls.${p}`).join(' and ')} need${named.length === 1 ? 's' : ''} tls.caBundle (the CA bundle every internal client checks the server against)`);
}

/**
 * A URL the file gives for a part that serves HTTPS must say https: an internal client would otherwise
 * speak plain HTTP to a TLS port, or worse, to something else listening there.
 */
export function checkHttpsUrl(url: string, key: string, why: string): void {
  if (!url.startsWith('https:')) throw refuse(`${key}=${url} must be https:// when ${why} (no plaintext fallback)`);
}
