import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isFleetError } from '@fleetpki/core';
import type { Principal } from '@fleetpki/ca';
import { CONSOLE_COOKIE, type ApiAccess } from '../auth.js';
import { callApi, type ApiAnswer } from './api-call.js';
import type { Html } from './html.js';
import { page, type PageContext } from './layout.js';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession?: { secret: string; principal: Principal; csrf: string };
  }
}

export interface ConsoleDeps {
  readonly access: ApiAccess;
  /** Served over HTTPS: the console signs in only then (its cookie is Secure). */
  readonly tls: boolean;
  /** A test deployment: the drills page offers administrators a button that starts a failover drill. */
  readonly drills: boolean;
}

type Sessions = NonNullable<ApiAccess['sessions']>;

/** What every console route uses: render a page, the signed-in guard, the page context and the API call. */
export interface ConsoleKit {
  readonly deps: ConsoleDeps;
  readonly sessions: Sessions;
  send(reply: FastifyReply, title: string, body: Html, context?: PageContext, code?: number): FastifyReply;
  /** preHandler of every page but sign-in: a live session (else the sign-in page), and CSRF on POST. */
  signedIn(request: FastifyRequest, reply: FastifyReply): Promise<unknown>;
  ctx(request: FastifyRequest, current: string): PageContext;
  api<T>(request: FastifyRequest, method: 'GET' | 'POST', url: string, payload?: unknown): Promise<ApiAnswer<T>>;
}

/** Clears the session cookie (signed out, or a session that is no longer valid). */
export const CLEAR_SESSION_COOKIE = `${CONSOLE_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`;

export function consoleKit(app: FastifyInstance, deps: ConsoleDeps, sessions: Sessions): ConsoleKit {
  return {
    deps,
    sessions,
    send: (reply, title, body, context, code = 200) => reply.status(code).type('text/html; charset=utf-8').send(page(title, body, context)),
    async signedIn(request, reply) {
      const secret = request.cookies?.[CONSOLE_COOKIE];
      if (!secret) return reply.redirect('/console/sign-in', 303);
      try {
        const principal = await sessions.principal(secret);
        request.consoleSession = { secret, principal, csrf: sessions.csrfToken(secret) };
      } catch (err) {
        if (isFleetError(err, 'SESSION_INVALID')) return reply.header('set-cookie', CLEAR_SESSION_COOKIE).redirect('/console/sign-in', 303);
        throw err;
      }
      // State-changing forms carry the session's CSRF token (the API checks it again on its own routes).
      if (request.method === 'POST') sessions.assertCsrf(secret, (request.body as { _csrf?: unknown } | undefined)?._csrf);
      return undefined;
    },
    ctx: (request, current) => ({ principal: request.consoleSession!.principal, csrf: request.consoleSession!.csrf, current }),
    api: (request, method, url, payload) => callApi(app, request, method, url, { ...(payload !== undefined ? { payload } : {}), ...(method === 'POST' ? { csrf: request.consoleSession!.csrf } : {}) }),
  };
}
