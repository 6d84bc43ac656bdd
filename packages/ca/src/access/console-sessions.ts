import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FleetError } from '@fleetpki/core';
import type { ConsoleSessionStore } from '@fleetpki/store';
import type { Principal } from './api-tokens.js';

/**
 * Console sessions: a browser that signed in with a token or a client certificate holds a random
 * 256-bit secret in a cookie; the store keeps its SHA-256 and the credential behind it. The CSRF token
 * of a session is derived from the secret (a page can carry it; another site cannot compute it).
 */
export class ConsoleSessions {
  constructor(
    private readonly store: ConsoleSessionStore,
    private readonly limits: { idleSeconds: number; maxAgeSeconds: number },
  ) {}

  get maxAgeSeconds(): number {
    return this.limits.maxAgeSeconds;
  }

  /** Opens a session for a principal just authenticated; returns the cookie's secret. */
  async open(principal: Principal): Promise<string> {
    const secret = randomBytes(32).toString('base64url');
    if (!/^(token|cert):/.test(principal.proof)) throw new FleetError('SESSION_CREDENTIAL', `a console session cannot be opened for credential ${principal.credential}`, { httpStatus: 400 });
    // The database checks the credential itself (migrations/0026): a token by its proof, a certificate by its record.
    await this.store.open({ idSha256: sessionHash(secret), credentialProof: principal.proof, maxAgeSeconds: this.limits.maxAgeSeconds });
    return secret;
  }

  /** The principal behind a cookie's secret; the same refusal for every reason (expired, idle, revoked, unknown). */
  async principal(secret: string): Promise<Principal> {
    const found = /^[A-Za-z0-9_-]{43}$/.test(secret) ? await this.store.find(sessionHash(secret), this.limits.idleSeconds) : undefined;
    if (!found) throw new FleetError('SESSION_INVALID', 'the console session has ended (signed out, idle, expired, or its credential was revoked): sign in again', { httpStatus: 401 });
    // A session signed in with a token proves that token to the rule functions; one signed in with a
    // certificate proves nothing the database can check.
    return { ...found, proof: found.credential.startsWith('token:') ? `session:${sessionHash(secret).toString('hex')}` : found.credential };
  }

  async end(secret: string): Promise<void> {
    if (/^[A-Za-z0-9_-]{43}$/.test(secret)) await this.store.end(sessionHash(secret));
  }

  /** The CSRF token every form and state-changing call of this session must carry. */
  csrfToken(secret: string): string {
    return createHash('sha256').update(`fleetpki-console-csrf:${secret}`).digest('base64url');
  }

  assertCsrf(secret: string, given: unknown): void {
    const expected = Buffer.from(this.csrfToken(secret));
    const got = Buffer.from(typeof given === 'string' ? given : '');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new FleetError('CSRF_INVALID', 'the form or request does not carry this session\'s CSRF token: reload the page and try again', { httpStatus: 403 });
    }
  }
}

/**
 * The sign-in form's CSRF protection (login CSRF: a forged sign-in would put a browser into someone
 * else's session). There is no session yet, and SameSite on a cookie that does not exist protects
 * nothing, so the sign-in page sets a pre-session cookie with a random secret and puts a token derived
 * from it into its forms; a sign-in must carry both, and they must belong together (OWASP's CSRF
 * prevention: tokens bound to a pre-session). The secret never leaves the cookie (HttpOnly), and another
 * site can neither read it nor set it (__Host-, SameSite=Strict), so its token cannot be forged or
 * swapped in from the forger's own pre-session.
 */
export class SignInCsrf {
  /** How long a sign-in page stays usable. */
  static readonly maxAgeSeconds = 3_600;

  /** The secret of a pre-session cookie: `given` if it is one, otherwise a new one. */
  static secret(given: unknown): string {
    return typeof given === 'string' && SECRET.test(given) ? given : randomBytes(32).toString('base64url');
  }

  static token(secret: string): string {
    return createHash('sha256').update(`fleetpki-console-sign-in-csrf:${secret}`).digest('base64url');
  }

  static assert(secret: unknown, given: unknown): void {
    const got = Buffer.from(typeof given === 'string' ? given : '');
    const expected = typeof secret === 'string' && SECRET.test(secret) ? Buffer.from(SignInCsrf.token(secret)) : undefined;
    if (!expected || got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new FleetError('CSRF_INVALID', "the sign-in did not come from this console's own sign-in page (or the page is older than an hour): sign in again from the form below", { httpStatus: 403 });
    }
  }
}

const SECRET = /^[A-Za-z0-9_-]{43}$/;

function sessionHash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}
