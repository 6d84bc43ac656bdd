import type { FastifyReply, FastifyRequest } from 'fastify';
import { FleetError, isFleetError, type SiteId } from '@fleetpki/core';
import type { TLSSocket } from 'node:tls';
import { AccessLog, ClientCertificateAuthenticator, TokenAuthenticator, type AccessStore, type ConsoleSessions, type Principal, type Role, auditActor } from '@fleetpki/ca';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/**
 * The console's session cookie. __Host-: Secure, Path=/, no Domain (RFC 6265bis 4.1.3.2), so no other
 * host or path can set or shadow it.
 */
export const CONSOLE_COOKIE = '__Host-fleetpki-console';
/** The sign-in page's pre-session cookie, which the sign-in form's CSRF token is bound to (ca SignInCsrf). */
export const SIGN_IN_COOKIE = '__Host-fleetpki-sign-in';
/** The header a session's state-changing request carries its CSRF token in (the console's own calls set it). */
export const CSRF_HEADER = 'x-fleetpki-csrf';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Failed authentications per client address in a sliding minute. Past the limit the address gets 429
 * for the rest of the window: tokens have 256 random bits, so this is about load and noise in the
 * audit log, not about guessing.
 */
export class FailedAuthLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(private readonly perMinute: number) {}

  assertAllowed(address: string): void {
    const w = this.windows.get(address);
    if (w && Date.now() - w.start < 60_000 && w.count >= this.perMinute) {
      throw new FleetError('AUTH_RATE_LIMITED', `too many failed authentications from this address; try again in ${Math.ceil((60_000 - (Date.now() - w.start)) / 1000)} s`, { httpStatus: 429 });
    }
  }

  recordFailure(address: string): void {
    const now = Date.now();
    const w = this.windows.get(address);
    if (!w || now - w.start >= 60_000) {
      if (this.windows.size > 100_000) this.windows.clear();
      this.windows.set(address, { start: now, count: 1 });
    } else w.count++;
  }
}

/**
 * HTTP Basic (RFC 7617), for clients that can send nothing else (EST clients: `pki --est --userpass`,
 * `curl -u`): the password is an API token, the user name is free (a factory line's name, say) and
 * not checked. Only over TLS: Basic sends the token in the clear otherwise.
 */
function basicPassword(authorization: string, overTls: boolean): string {
  if (!overTls) throw new FleetError('AUTH_BASIC_NEEDS_TLS', 'HTTP Basic credentials are accepted only over HTTPS', { httpStatus: 401 });
  const decoded = Buffer.from(authorization.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new FleetError('AUTH_INVALID', 'HTTP Basic credentials must be user:token, base64-encoded', { httpStatus: 401 });
  return decoded.slice(colon + 1);
}

/**
 * Who may call the API: a bearer token, or (over HTTPS) a client certificate from the organisation CA;
 * failed-attempt limiting; an audit record of every refusal.
 */
export class ApiAccess {
  private readonly limiter: FailedAuthLimiter;
  private readonly certificates: ClientCertificateAuthenticator;
  private readonly log: AccessLog;

  constructor(
    readonly authenticator: TokenAuthenticator,
    private readonly store: AccessStore,
    private readonly site: SiteId,
    options: { failedAuthPerMinute: number | FailedAuthLimiter; sessions?: ConsoleSessions | undefined },
  ) {
    this.limiter = typeof options.failedAuthPerMinute === 'number' ? new FailedAuthLimiter(options.failedAuthPerMinute) : options.failedAuthPerMinute;
    this.certificates = new ClientCertificateAuthenticator(store);
    this.log = new AccessLog(store, site);
    this.sessions = options.sessions;
  }

  readonly sessions: ConsoleSessions | undefined;

  /**
   * The same rules over another connection pool's store (the reserved one): credentials (and console
   * sessions, given a store over that pool) are looked up and refusals audited there, and failed
   * attempts count against the same per-address limit.
   */
  over(store: AccessStore, sessions: ConsoleSessions | undefined = this.sessions): ApiAccess {
    return new ApiAccess(new TokenAuthenticator(store), store, this.site, { failedAuthPerMinute: this.limiter, sessions });
  }

  /** A token when one is sent (Bearer, or Basic over TLS); else a client certificate TLS has checked against the organisation CA. */
  private async authenticate(request: FastifyRequest): Promise<Principal> {
    const socket = request.raw.socket as Partial<TLSSocket>;
    // A console session (cookie): the person and credential it was opened with, still usable. A browser
    // sends cookies with every request, so whatever changes state must also carry the session's CSRF token.
    const session = request.headers.authorization === undefined ? request.cookies?.[CONSOLE_COOKIE] : undefined;
    if (session !== undefined && this.sessions) {
      const principal = await this.sessions.principal(session);
      if (!SAFE_METHODS.has(request.method)) this.sessions.assertCsrf(session, request.headers[CSRF_HEADER]);
      return principal;
    }
    if (request.headers.authorization === undefined && socket.encrypted && socket.getPeerCertificate) {
      const peer = socket.getPeerCertificate();
      if (peer?.raw) {
        if (!socket.authorized) throw new FleetError('CLIENT_CERT_INVALID', `the client certificate does not chain to the organisation CA (${String(socket.authorizationError ?? 'unverified')})`, { httpStatus: 401 });
        return this.certificates.authenticate({ raw: peer.raw, serialNumber: peer.serialNumber });
      }
    }
    const authorization = request.headers.authorization;
    if (authorization !== undefined && /^Basic\s/i.test(authorization)) return this.authenticator.authenticate(`Bearer ${basicPassword(authorization, socket.encrypted === true)}`);
    return this.authenticator.authenticate(authorization);
  }

  /** Console sign-in: who the token given (or else the TLS client certificate) is, refused and audited as admit does. */
  async identify(request: FastifyRequest, token: string | undefined): Promise<Principal> {
    this.limiter.assertAllowed(request.ip);
    try {
      if (token) return await this.authenticator.authenticate(`Bearer ${token.trim()}`);
      const socket = request.raw.socket as Partial<TLSSocket>;
      const peer = socket.encrypted && socket.getPeerCertificate ? socket.getPeerCertificate() : undefined;
      if (!peer?.raw) throw new FleetError('AUTH_REQUIRED', 'sign in with an API token, or present a client certificate from the organisation CA', { httpStatus: 401 });
      if (!socket.authorized) throw new FleetError('CLIENT_CERT_INVALID', `the client certificate does not chain to the organisation CA (${String(socket.authorizationError ?? 'unverified')})`, { httpStatus: 401 });
      return await this.certificates.authenticate({ raw: peer.raw, serialNumber: peer.serialNumber });
    } catch (err) {
      if (isFleetError(err)) {
        this.limiter.recordFailure(request.ip);
        await this.audit('auth.failed', 'anonymous', request, err.code);
      }
      throw err;
    }
  }

  /**
   * Before a request that authenticates itself inside its body (a CMP message's protection): an address
   * past its failed authentications (tokens, certificates, CMP alike) is refused now, 429, unread.
   */
  assertAuthenticationAllowed(request: FastifyRequest): void {
    this.limiter.assertAllowed(request.ip);
  }

  /** A failed authentication outside admit() (a CMP message whose protection failed): counted and audited as any other. */
  async recordFailedAuthentication(request: FastifyRequest, code: string): Promise<void> {
    this.limiter.recordFailure(request.ip);
    await this.audit('auth.failed', 'anonymous', request, code);
  }

  /** The organisation-CA client certificate TLS presented, if any (the sign-in page offers it). */
  presentedClientCertificate(request: FastifyRequest): { subject: string } | undefined {
    const socket = request.raw.socket as Partial<TLSSocket>;
    if (!socket.encrypted || !socket.getPeerCertificate || !socket.authorized) return undefined;
    const peer = socket.getPeerCertificate();
    return peer?.raw ? { subject: String(peer.subject?.CN ?? peer.serialNumber) } : undefined;
  }

  /** An audit row for something done through the console (sign-in, sign-out). */
  async record(request: FastifyRequest, action: string, principal: Principal): Promise<void> {
    await this.log.consoleEvent(action, principal, request.ip);
  }

  async admit(request: FastifyRequest, roles: readonly Role[]): Promise<Principal> {
    this.limiter.assertAllowed(request.ip);
    let principal: Principal;
    try {
      principal = await this.authenticate(request);
    } catch (err) {
      if (isFleetError(err)) {
        this.limiter.recordFailure(request.ip);
        await this.audit('auth.failed', 'anonymous', request, err.code);
      }
      throw err;
    }
    if (!roles.includes(principal.role)) {
      await this.audit('auth.forbidden', auditActor(principal), request, 'ROLE_FORBIDDEN');
      throw new FleetError('ROLE_FORBIDDEN', `role ${principal.role} may not ${request.method} ${request.routeOptions.url}; needs ${roles.join(' or ')}`, { httpStatus: 403 });
    }
    return principal;
  }

  /** Never the token itself: the route, the address and why. A failing audit write must not hide the refusal. */
  private async audit(action: 'auth.failed' | 'auth.forbidden', actor: string, request: FastifyRequest, code: string): Promise<void> {
    try {
      await this.log.refused(action, actor, `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`, code, request.ip);
    } catch (err) {
      request.log.warn({ code: (err as { code?: string }).code }, 'could not audit a refused request');
    }
  }
}

/**
 * A preParsing hook that authenticates (token or client certificate) and admits only the given roles.
 * preParsing: after the per-address rate limit (onRequest), before the body is read, so a caller who
 * is not admitted never has a body parsed or validated.
 */
export function requireRole(access: ApiAccess, roles: readonly Role[]) {
  return async <P>(request: FastifyRequest, _reply: FastifyReply, payload: P): Promise<P> => {
    request.principal = await access.admit(request, roles);
    return payload;
  };
}

/** Factories see only their own manufacturer's records; the answer for others' is the same as for none. */
export function visibleTo(principal: Principal, manufacturerId: string): boolean {
  return principal.role !== 'factory' || principal.manufacturerId === manufacturerId;
}
