import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CSRF_HEADER } from '../auth.js';

export interface ApiAnswer<T> {
  readonly status: number;
  readonly ok: boolean;
  readonly body: T;
  /** A refusal's stable code and message ({ code, message } of every API error). */
  readonly error?: { readonly code: string; readonly message: string };
}

/**
 * The console does what it does through the API's own routes (fastify's inject: in process, no
 * socket): the same schema validation, roles, dual control, site guard and audit rows as a CLI or a
 * factory gets, with the browser's session cookie and CSRF token as the credential. A console page is a
 * rendering of API answers, never a second path to the store.
 */
export async function callApi<T = Record<string, unknown>>(app: FastifyInstance, request: FastifyRequest, method: 'GET' | 'POST', url: string, options: { payload?: unknown; csrf?: string } = {}): Promise<ApiAnswer<T>> {
  const res = await app.inject({
    method,
    url,
    // The browser's address, so per-address limits and audit rows name the person's machine, not ours.
    remoteAddress: request.ip,
    headers: {
      ...(request.headers.cookie ? { cookie: request.headers.cookie } : {}),
      ...(options.csrf ? { [CSRF_HEADER]: options.csrf } : {}),
      ...(options.payload !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(options.payload !== undefined ? { payload: JSON.stringify(options.payload) } : {}),
  });
  const type = String(res.headers['content-type'] ?? '');
  const body = (type.includes('json') ? res.json() : res.body) as T;
  const ok = res.statusCode < 300;
  const err = body as { code?: unknown; message?: unknown };
  return { status: res.statusCode, ok, body, ...(!ok && typeof err?.code === 'string' ? { error: { code: err.code, message: String(err.message ?? '') } } : {}) };
}
