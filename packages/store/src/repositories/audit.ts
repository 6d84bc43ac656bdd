import type { Queryable } from '../pool.js';

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
  // Through the one function the services may call (migrations/0027): the database assigns seq and time.
  await db.query(
    'SELECT fp_audit_append($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])',
    [events.map((e) => e.site), events.map((e) => e.actor), events.map((e) => e.action), events.map((e) => e.subject ?? null), events.map((e) => JSON.stringify(e.details ?? {}))],
  );
}
