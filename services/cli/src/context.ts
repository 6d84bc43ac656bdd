import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { DUAL_CONTROL_ROLES, DualControl, TokenAuthenticator, openOperatorPool, type ApprovalAction, type Principal, type Role, auditActor } from '@fleetpki/ca';
import { FleetError, loadConfig, type FleetConfig } from '@fleetpki/core';
import type { Pool } from '@fleetpki/store';

/**
 * Config and a database pool for this process's site, closed when `fn` ends. The CLI connects as the
 * operators' role (fleetpki_operator: what ceremonies, custody, keys and TLS need; people, tokens and
 * approvals only through the database's rule functions). `owner` is for migrations and the audited
 * owner-only paths (bootstrap, recovery): the host's owner access is the trust boundary there.
 */
export async function withDatabase<T>(fn: (ctx: { config: FleetConfig; pool: Pool }) => Promise<T>, options: { site?: string; owner?: boolean } = {}): Promise<T> {
  const config = loadConfig(options.site ? { ...process.env, FLEETPKI_SITE: options.site } : process.env);
  const pool = openOperatorPool(config, options.owner ? { owner: true } : {});
  try {
    return await fn({ config, pool });
  } finally {
    await pool.end();
  }
}

/**
 * Who acted, for the audit log, where no person's credential is involved: the owner-access paths
 * (bootstrap, recovery) and housekeeping (audit sealing, an unforced failover). The operating system's
 * account running the process, never a name from the environment: everything that changes trust takes
 * a person's token instead, and the audit row names that person (auditActor).
 */
export function hostActor(): string {
  return `host:${userInfo().username}@${hostname()}`;
}

/** The officer a token file (or FLEETPKI_TOKEN) names, refused unless their role is one of `roles`. */
export async function requireOfficer(pool: Pool, tokenFile: string | undefined, roles: readonly Role[], what: string): Promise<Principal> {
  const token = tokenFile ? readFileSync(tokenFile, 'utf8').trim() : process.env.FLEETPKI_TOKEN;
  const article = (role: string) => (/^[aeiou]/.test(role) ? 'an' : 'a');
  if (!token) throw new FleetError('TOKEN_MISSING', `${what} is for ${article(roles[0]!)} ${roles.join(' or ')}: give your API token with --token-file FILE or FLEETPKI_TOKEN`);
  const officer = await new TokenAuthenticator(pool).authenticate(`Bearer ${token}`);
  if (!roles.includes(officer.role)) throw new FleetError('ROLE_FORBIDDEN', `${what} is for ${article(roles[0]!)} ${roles.join(' or ')}; the token is ${article(officer.role)} ${officer.role}'s`);
  return officer;
}

/**
 * Runs an approved dual-control request from the command line (where the HSM and the sites are). The
 * executing officer is the one whose API token is given: the requester or the approver.
 */
export async function executeApproved<T>(config: FleetConfig, pool: Pool, approvalId: string, tokenFile: string | undefined, action: ApprovalAction, run: (payload: Record<string, unknown>, actor: string) => Promise<T>, recorded?: (outcome: T) => unknown): Promise<T> {
  const officer = await requireOfficer(pool, tokenFile, DUAL_CONTROL_ROLES[action], `executing an approved ${action}`);
  const dualControl = new DualControl(pool, config.site, config.dualControl.approvalTtlMinutes);
  const { outcome } = await dualControl.execute(officer, approvalId, action, (payload) => run(payload, `${auditActor(officer)} (approval ${approvalId})`), recorded);
  return outcome;
}
