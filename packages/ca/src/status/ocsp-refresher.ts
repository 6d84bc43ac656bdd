import { OCSP_PASS_LIMITS } from './ocsp-preproducer.js';
import { ocspStatusOf, type OcspSigning } from './ocsp-signing.js';
import type { OcspProductionStore } from './store.js';

/**
 * Produces stored responses again before they expire (RFC 9919 pre-production): those with less than
 * `refreshBeforeMs` left before their nextUpdate, with the certificate's current status. Active site only.
 */
export class OcspRefresher {
  constructor(
    private readonly store: OcspProductionStore,
    private readonly caId: string,
    private readonly signing: OcspSigning | undefined,
    private readonly canWrite: () => Promise<boolean>,
    private readonly refreshBeforeMs = 3.5 * 86_400_000,
  ) {}

  async refreshExpiring(limit: number = OCSP_PASS_LIMITS.refresh): Promise<number> {
    const signing = this.signing;
    if (!signing || !(await this.canWrite())) return 0;
    const due = await this.store.ocspResponsesExpiringBefore(this.caId, new Date(Date.now() + this.refreshBeforeMs), limit);
    const withStatus = await Promise.all(due.map(async (item) => ({ ...item, status: ocspStatusOf(await this.store.certificateStatus(item.serial), this.caId) })));
    await signing.produceAndStore((responses) => this.store.saveOcspResponses(responses), withStatus);
    return due.length;
  }
}
