import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

// The request a piece of work serves, carried through every await without each function passing it:
// the API's request, or the batch a worker's chunk belongs to. Audit rows and log lines read it, so an
// operator follows one factory's upload from the API's log through the worker's to the audit log.
const context = new AsyncLocalStorage<{ readonly requestId: string }>();

/** A request id from a client (X-Request-Id) is taken when it is short and plain; otherwise a new one. */
export function requestIdFrom(header: unknown): string {
  return typeof header === 'string' && /^[A-Za-z0-9._:-]{8,64}$/.test(header) ? header : randomUUID();
}

/** Runs `fn` with `requestId` as the current request (undefined: none). */
export function withRequestId<T>(requestId: string | undefined, fn: () => T): T {
  return requestId === undefined ? fn() : context.run({ requestId }, fn);
}

/** The request the current work serves, if any. */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}
