import type { SiteId } from '@fleetpki/core';
import { auditActor, type Principal } from './api-tokens.js';
import type { AuditAppender } from './store.js';

/**
 * The audit rows of authentication: refusals (never the credential itself: what was asked, from where,
 * and why) and the console's sign-ins and sign-outs.
 */
export class AccessLog {
  constructor(
    private readonly store: AuditAppender,
    private readonly site: SiteId,
  ) {}

  /** A refused request: `actor` is 'anonymous' when no credential held, `subject` the method and route. */
  async refused(action: 'auth.failed' | 'auth.forbidden', actor: string, subject: string, code: string, address: string): Promise<void> {
    await this.store.appendAuditEvents([{ site: this.site, actor, action, subject, details: { code, address } }]);
  }

  /** Something a person did through the console (sign-in, sign-out). */
  async consoleEvent(action: string, principal: Principal, address: string): Promise<void> {
    await this.store.appendAuditEvents([{ site: this.site, actor: auditActor(principal), action, subject: principal.personId, details: { address, credential: principal.credential } }]);
  }
}
