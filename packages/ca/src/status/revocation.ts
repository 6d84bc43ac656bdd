import { FleetError, type SiteId } from '@fleetpki/core';
import type { RevocationOutcome, RevocationPreview, RevocationTarget } from '@fleetpki/store';
import { CRL_REASONS, type CrlReasonName } from '@fleetpki/x509';
import type { RevocationStore } from './store.js';

/** Accepts an RFC 5280 reason name (keyCompromise) or its code (1); 7 and removeFromCRL are refused. */
export function parseRevocationReason(input: string | number | undefined): number {
  if (input === undefined) return CRL_REASONS.unspecified;
  const code = typeof input === 'number' ? input : /^\d+$/.test(input) ? Number(input) : CRL_REASONS[input as CrlReasonName];
  // removeFromCRL (8) only makes sense in delta CRLs for certificateHold, which fleetpki does not use.
  if (code === undefined || !Object.values(CRL_REASONS).includes(code as never) || code === CRL_REASONS.removeFromCRL) {
    throw new FleetError('REVOCATION_REASON_INVALID', `unknown revocation reason "${String(input).slice(0, 40)}"; use one of ${Object.keys(CRL_REASONS).filter((r) => r !== 'removeFromCRL').join(', ')}`, { httpStatus: 400 });
  }
  return code;
}

export const MAX_REVOCATION_TARGETS = 1_000_000;

/**
 * Revokes by serial(s), device(s) or batch. Idempotent: a certificate keeps its first revocation. The
 * CRL shards it touches are marked for the publisher and the OCSP responder picks the change up within
 * a second; the request and every serial it revoked are in the audit log.
 */
export class RevocationService {
  constructor(
    private readonly store: RevocationStore,
    private readonly site: SiteId,
  ) {}

  /** What a revocation would revoke (certificates, already revoked, per batch); changes nothing. */
  preview(target: RevocationTarget): Promise<RevocationPreview> {
    return this.store.previewRevocation(target);
  }

  /** Database time, for approval expiry (independent of this host's clock). */
  databaseNow(): Promise<Date> {
    return this.store.databaseNow();
  }

  async revoke(request: {
    target: RevocationTarget;
    reason: number;
    requestedBy: string;
    manufacturerId: string | null;
    revokedAt?: Date;
    personId?: string | null;
    approvalId?: string | null;
    threshold?: { certificates: number; windowMinutes: number };
  }): Promise<RevocationOutcome> {
    const t = request.target;
    const count = t.kind === 'serials' ? t.serials.length : t.kind === 'devices' ? t.eui64s.length : 1;
    if (count === 0) throw new FleetError('REVOCATION_EMPTY', 'name at least one serial, device or batch to revoke', { httpStatus: 400 });
    if (count > MAX_REVOCATION_TARGETS) throw new FleetError('REVOCATION_TOO_LARGE', `at most ${MAX_REVOCATION_TARGETS} serials or devices a request`, { httpStatus: 413 });
    if (t.kind === 'batch') {
      const owner = await this.store.batchOwner(t.batchId);
      if (!owner || (request.manufacturerId !== null && owner !== request.manufacturerId)) throw new FleetError('BATCH_NOT_FOUND', `no batch ${t.batchId}`, { httpStatus: 404 });
    }
    const revokedAt = new Date(Math.floor((request.revokedAt ?? new Date()).getTime() / 1000) * 1000);
    return this.store.revokeCertificates({
      target: t,
      reason: request.reason,
      revokedAt,
      requestedBy: request.requestedBy,
      manufacturerId: request.manufacturerId,
      site: this.site,
      personId: request.personId ?? null,
      approvalId: request.approvalId ?? null,
      ...(request.threshold ? { threshold: request.threshold } : {}),
    });
  }

  /**
   * Marks an issuing or organisation CA revoked (only through an approved dual-control request): its
   * issuance stops within a second (CaStatusGuard). The root is offline and is not revoked here.
   */
  async revokeCa(caId: string, reason: string, requestedBy: string, approvalId: string): Promise<{ caId: string; status: 'revoked'; reason: string; arl: string }> {
    const ca = (await this.store.cas()).find((c) => c.id === caId);
    if (!ca) throw new FleetError('CA_NOT_FOUND', `no CA ${caId.slice(0, 40)}`, { httpStatus: 404 });
    if (ca.kind === 'root') throw new FleetError('CA_ROOT_OFFLINE', 'the root CA is revoked by withdrawing it from trust stores, not here', { httpStatus: 400 });
    const code = parseRevocationReason(reason);
    await this.store.markCaRevoked(caId, code, approvalId, { site: this.site, actor: requestedBy, details: { reason } });
    // Relying parties learn of it from the root's ARL, which only the offline root signs (a ceremony).
    return { caId, status: 'revoked', reason, arl: 'due: the root custodians sign and publish it with `pnpm fleetpki ceremony arl`' };
  }
}
