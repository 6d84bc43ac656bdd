import type { Queryable } from '../pool.js';
import { currentRequestId } from '@fleetpki/core';

export interface AuditEvent {
  readonly site: 'a' | 'b';
  readonly actor: string;
  readonly action: string;
  readonly subject?: string;
  readonly details?: Record<string, unknown>;
}

/** Appends events on the caller's connection, so they commit (or roll back) with the change they record. */
export async function appendAuditEvents(db: Queryable, events: readonly AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  // The request the rows were written for (an API request, a batch's upload), so the audit log leads
  // back to the service logs' lines of that request.
  const requestId = currentRequestId();
  const details = (e: AuditEvent) => (requestId !== undefined && e.details?.requestId === undefined ? { ...e.details, requestId } : (e.details ?? {}));
  // Through the one function the services may call (migrations/0027): the database assigns seq and time.
  await db.query(
    'SELECT fp_audit_append($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])',
    [events.map((e) => e.site), events.map((e) => e.actor), events.map((e) => e.action), events.map((e) => e.subject ?? null), events.map((e) => JSON.stringify(details(e)))],
  );
}
