import type { FastifyInstance } from 'fastify';
import type { SiteGuard } from '@fleetpki/ca';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * No write hangs on a standby that is gone: a write still unanswered after `waitMs`, on a primary whose
 * synchronous standby is unreachable, is answered 503 STANDBY_UNAVAILABLE with Retry-After. Its
 * transaction keeps waiting and completes if the standby returns (a retry then finds the result: an
 * enrolment retried with the same key gets the certificate). A write that is merely slow (a large
 * batch upload) while the standby streams is left alone: the check is made again after another wait.
 */
export function installWriteDeadline(app: FastifyInstance, guard: Pick<SiteGuard, 'writesBlocked' | 'standbyUnavailable'>, waitMs: number): void {
  app.addHook('onRequest', async (request, reply) => {
    if (!WRITES.has(request.method)) return;
    let timer: NodeJS.Timeout;
    const arm = () => {
      timer = setTimeout(() => {
        void (async () => {
          if (reply.sent) return;
          const blocked = await guard.writesBlocked(true).catch(() => undefined);
          if (reply.sent) return;
          if (!blocked) return arm();
          const err = guard.standbyUnavailable(blocked.since);
          request.log.warn({ code: err.code, url: request.url }, 'write answered 503 after waiting for the synchronous standby');
          // Answered here, outside the route: the route's own answer, when its transaction completes
          // later, goes nowhere (a hijacked reply ignores it) instead of being an error.
          reply.hijack();
          reply.raw.writeHead(503, {
            'content-type': 'application/json; charset=utf-8',
            'retry-after': String((err.details as { retryAfterSeconds: number }).retryAfterSeconds),
            'cache-control': 'no-store',
            'x-content-type-options': 'nosniff',
          });
          reply.raw.end(JSON.stringify(err.toJSON()));
        })();
      }, waitMs);
    };
    arm();
    reply.raw.once('close', () => clearTimeout(timer));
  });
  // A write answered 503 here may still fail later (its connection cut by a failover, say). Its client has
  // its answer; the failure is told as what it is, not as fastify's "Promise errored, but reply.sent =
  // true was set" error. Routes registered after this hook only: every API route is.
  app.addHook('onRoute', (route) => {
    if (![route.method].flat().some((m) => WRITES.has(m))) return;
    const handler = route.handler;
    route.handler = async function (this: FastifyInstance, request, reply) {
      try {
        return await handler.call(this, request, reply);
      } catch (err) {
        if (!reply.sent) throw err;
        request.log.warn({ err, url: request.url }, 'a write answered 503 while it waited for the synchronous standby failed afterwards');
        return undefined;
      }
    };
  });
}
