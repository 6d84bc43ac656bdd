import type { FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import { isFleetError } from '@fleetpki/core';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { problem } from './layout.js';
import { consoleKit, type ConsoleDeps } from './kit.js';
import { registerRevocationScreens } from './revocation-routes.js';
import { registerOperationsScreens, registerRecordScreens } from './screen-routes.js';
import { registerSignIn } from './sign-in-routes.js';

export type { ConsoleDeps } from './kit.js';

/** The CSP of console pages: our own script and stylesheet only, forms posting back to us. */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/**
 * The operator console under /console: server-rendered pages over the API's own routes (api-call.ts),
 * sessions from a token or a client certificate (packages/ca access/console-sessions.ts), CSRF on every
 * form. Works without JavaScript; with it, a running batch's figures refresh themselves. This sets up
 * the console's scope (body parsers, CSP, error pages, assets); the screens register themselves.
 */
export async function registerConsole(app: FastifyInstance, deps: ConsoleDeps): Promise<void> {
  const sessions = deps.access.sessions;
  if (!sessions) throw new Error('the console needs ApiAccess with console sessions');
  const kit = consoleKit(app, deps, sessions);

  await app.register(async (scope) => {
    // Pages, not API: left out of the OpenAPI document (test/console.test.ts covers who may see them).
    scope.addHook('onRoute', (route) => {
      route.schema = { ...(route.schema ?? {}), hide: true };
    });
    // Form bodies only here: the API's own routes keep taking JSON alone.
    await scope.register(formbody, { bodyLimit: 32 * 1024 * 1024 });
    // The revocation form takes a list as a file too (multipart); fields and the file's bytes land in the body.
    await scope.register(multipart, { attachFieldsToBody: 'keyValues', limits: { fileSize: 32 * 1024 * 1024, files: 1, fields: 10 } });
    scope.addHook('onSend', async (_request, reply) => {
      reply.header('content-security-policy', CONSOLE_CSP);
    });
    // A refusal on a console page is a page (its code and message), not the API's JSON.
    scope.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
      const code = isFleetError(err) ? err.code : err.statusCode && err.statusCode < 500 ? 'REQUEST_INVALID' : 'INTERNAL';
      const statusCode = isFleetError(err) ? err.httpStatus : err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
      if (statusCode >= 500) request.log.error({ err }, 'console request failed');
      const message = statusCode >= 500 ? 'the console could not answer; the service log has the details' : err.message;
      const context = request.consoleSession ? kit.ctx(request, '') : undefined;
      return kit.send(reply, 'Refused', problem({ code, message }), context, statusCode);
    });

    scope.get('/console/assets/console.css', async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(CONSOLE_CSS));
    scope.get('/console/assets/console.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(CONSOLE_JS));

    registerSignIn(scope, kit);
    registerOperationsScreens(scope, kit);
    registerRevocationScreens(scope, kit);
    registerRecordScreens(scope, kit);
  });
}
