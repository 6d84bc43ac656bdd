import type { DaemonJob, SiteId } from '@fleetpki/core';
import type { KeyStore } from '@fleetpki/hsm';
import type { Pool } from '@fleetpki/store';
import { ensureAuditKey, sealAuditLog, type AuditSigner } from './audit-chain.js';

/** How long the sealer waits before trying to make or certify its audit key again after a failure. */
export const AUDIT_KEY_RETRY_MS = 60_000;

export interface AuditSealerLogger {
  warn(details: object, message: string): void;
}

/**
 * The audit sealer as a daemon job: every few seconds the active site links its settled audit rows into
 * the hash chain and writes a checkpoint outside the database (audit-chain.ts). Seals are signed by the
 * site's audit key, made and certified on first use; without one (no HSM key store here, or the key
 * cannot be made) they are still sealed, and `audit verify` reports them as unsigned: better seen than
 * silently unsealed. The runner's leader check keeps it to the active site.
 */
export function auditSealerJob(deps: { pool: Pool; keyStore: KeyStore | undefined; site: SiteId; checkpointFile: string; actor: string; log: AuditSealerLogger; everyMs?: number }): DaemonJob {
  let signer: AuditSigner | undefined;
  let keyWarned = false;
  // After a failure the key is tried again once every AUDIT_KEY_RETRY_MS, not every pass: each try may
  // record an organisation-certificate intent and ask the HSM for a signature (an outside review counted
  // one intent per 5 s pass while the organisation CA's key could not sign).
  let nextTry = 0;
  const signerForSeals = async (): Promise<{ signer?: AuditSigner }> => {
    if (!signer && deps.keyStore && Date.now() >= nextTry) {
      try {
        signer = await ensureAuditKey(deps.pool, deps.keyStore, deps.site, deps.actor);
      } catch (err) {
        nextTry = Date.now() + AUDIT_KEY_RETRY_MS;
        if (!keyWarned) deps.log.warn({ code: (err as { code?: string }).code, message: (err as Error).message }, 'no audit key: seals are not signed (tried again every minute)');
        keyWarned = true;
      }
    }
    return signer ? { signer } : {};
  };
  return {
    name: 'audit-sealer',
    everyMs: deps.everyMs ?? 5_000,
    async pass() {
      const seal = await sealAuditLog(deps.pool, deps.checkpointFile, await signerForSeals());
      if (seal.gaps.length) deps.log.warn({ gaps: seal.gaps }, 'audit log: seq numbers with no row sealed over (a rolled-back insert leaves such a hole; `fleetpki audit verify` tells a removed row apart)');
      return false;
    },
  };
}
