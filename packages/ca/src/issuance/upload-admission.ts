import { FleetError } from '@fleetpki/core';

export interface UploadAdmissionLimits {
  /** Uploads this process takes at once: the size of the uploads' own connection pool, so none waits for one. */
  readonly total: number;
  /** Uploads one manufacturer may have in progress at once. */
  readonly perManufacturer: number;
  /** What the refusals' Retry-After says. */
  readonly retryAfterSeconds: number;
}

/**
 * Who may start a manifest upload now. Decided before a byte of the body is read: one manufacturer
 * (one leaked factory token) gets at most its share of the upload connections, and an upload beyond
 * the pool is refused at once instead of waiting for a connection.
 */
export class UploadAdmission {
  private readonly byManufacturer = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: UploadAdmissionLimits) {}

  /** A slot for one upload, or a refusal (429 for the manufacturer's share, 503 when every slot is taken). Call the release once the upload is over. */
  admit(manufacturerId: string): () => void {
    const mine = this.byManufacturer.get(manufacturerId) ?? 0;
    const retryAfterSeconds = this.limits.retryAfterSeconds;
    if (mine >= this.limits.perManufacturer) {
      throw new FleetError('UPLOADS_PER_MANUFACTURER', `manufacturer ${manufacturerId} already has ${mine} manifest upload${mine === 1 ? '' : 's'} in progress, the most it may have at once; send this one when one has finished`, {
        httpStatus: 429,
        details: { inProgress: mine, limit: this.limits.perManufacturer, retryAfterSeconds },
      });
    }
    if (this.total >= this.limits.total) {
      throw new FleetError('UPLOADS_BUSY', `this server takes ${this.limits.total} manifest uploads at a time and all are in progress; try again shortly`, { httpStatus: 503, details: { limit: this.limits.total, retryAfterSeconds } });
    }
    this.byManufacturer.set(manufacturerId, mine + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byManufacturer.get(manufacturerId) ?? 1) - 1;
      if (left > 0) this.byManufacturer.set(manufacturerId, left);
      else this.byManufacturer.delete(manufacturerId);
    };
  }

  /** Uploads in progress (for metrics and tests). */
  inProgress(): number {
    return this.total;
  }
}
