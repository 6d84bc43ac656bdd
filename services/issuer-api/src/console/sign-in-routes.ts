import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { isFleetError } from '@fleetpki/core';
import { SignInCsrf } from '@fleetpki/ca';
import { CONSOLE_COOKIE, SIGN_IN_COOKIE } from '../auth.js';
import type { Html } from './html.js';
import { homeFor, problem } from './layout.js';
import { signInBody } from './pages/sign-in.js';
import { CLEAR_SESSION_COOKIE, type ConsoleKit } from './kit.js';

/** Signing in (token or client certificate) and out of the console. */
export function registerSignIn(scope: FastifyInstance, kit: ConsoleKit): void {
  const { deps, sessions, send } = kit;
  // Over TLS, on this request's own connection: the session cookie is Secure, and a token typed into a
  // page must never cross the network in the clear.
  const overTls = (request: FastifyRequest) => deps.tls && (request.raw.socket as Partial<TLSSocket>).encrypted === true;
  const certificateOffer = (request: FastifyRequest): { certificate?: { subject: string } } => {
    const certificate = deps.access.presentedClientCertificate(request);
    return certificate ? { certificate } : {};
  };
  // Login CSRF: the sign-in forms carry a token bound to a pre-session cookie that this page sets (the
  // one a browser already holds, if any, so two open sign-in tabs both work).
  const signInPage = (request: FastifyRequest, reply: FastifyReply, code: number, error?: Html) => {
    const pre = SignInCsrf.secret(request.cookies?.[SIGN_IN_COOKIE]);
    void reply.header('set-cookie', `${SIGN_IN_COOKIE}=${pre}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${SignInCsrf.maxAgeSeconds}`);
    return send(reply, 'Sign in', signInBody({ tls: true, csrf: SignInCsrf.token(pre), ...certificateOffer(request), ...(error ? { error } : {}) }), undefined, code);
  };
  scope.get('/console/sign-in', async (request, reply) => (overTls(request) ? signInPage(request, reply, 200) : send(reply, 'Sign in', signInBody({ tls: false }), undefined, 403)));

  scope.post<{ Body: { token?: string; method?: string; _csrf?: string } }>('/console/sign-in', async (request, reply) => {
    if (!overTls(request)) return send(reply, 'Sign in', signInBody({ tls: false }), undefined, 403);
    const body = request.body ?? {};
    try {
      // Before the credential is even looked at: a forged sign-in is refused whoever's token it carries.
      SignInCsrf.assert(request.cookies?.[SIGN_IN_COOKIE], body._csrf);
      const principal = await deps.access.identify(request, body.method === 'certificate' ? undefined : (body.token ?? ''));
      const secret = await sessions.open(principal);
      await deps.access.record(request, 'console.sign-in', principal);
      // The session replaces the pre-session: its token is spent.
      void reply.header('set-cookie', [`${CONSOLE_COOKIE}=${secret}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${sessions.maxAgeSeconds}`, `${SIGN_IN_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`]);
      return reply.redirect(homeFor(principal.role), 303);
    } catch (err) {
      if (!isFleetError(err)) throw err;
      return signInPage(request, reply, err.httpStatus, problem({ code: err.code, message: err.message }));
    }
  });

  scope.post('/console/sign-out', { preHandler: kit.signedIn }, async (request, reply) => {
    const { secret, principal } = request.consoleSession!;
    await sessions.end(secret);
    await deps.access.record(request, 'console.sign-out', principal);
    return reply.header('set-cookie', CLEAR_SESSION_COOKIE).redirect('/console/sign-in', 303);
  });
}
