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

function sessionHash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}
