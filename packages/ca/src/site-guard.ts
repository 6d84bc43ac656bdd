import { FleetError, type FleetConfig } from '@fleetpki/core';
import { isInRecovery, type Pool } from '@fleetpki/store';

/**
 * Writes go to the active site only. A site whose database is a hot standby answers writes with 503 and
 * names the other site, until a failover promotes it. Checked at most once a second.
 */
export class SiteGuard {
  private standby: boolean | undefined;
  private checkedAt = 0;

  constructor(
    private readonly pool: Pool,
    private readonly config: FleetConfig,
  ) {}

  async isStandby(): Promise<boolean> {
    if (this.standby === undefined || Date.now() - this.checkedAt > 1_000) {
      this.standby = await isInRecovery(this.pool);
      this.checkedAt = Date.now();
    }
    return this.standby;
  }

  async assertWritable(): Promise<void> {
    if (!(await this.isStandby())) return;
    const other = this.config.sites[this.config.site === 'a' ? 'b' : 'a'];
    throw new FleetError('SITE_STANDBY', `site ${this.config.site} is a standby and accepts no writes; the active site is ${other.id} (http://127.0.0.1:${other.apiPort})`, {
      httpStatus: 503,
      details: { activeSite: other.id },
    });
  }
}
