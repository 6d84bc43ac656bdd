import { FleetError } from '@fleetpki/core';

/** A place in an address's budget, taken before a request's protection is checked. */
export interface CmpAuthTicket {
  /** The request authenticated: its place goes back (honest traffic spends nothing). */
  refund(): void;
}

/**
 * What CMP requests may cost an address before they prove who sent them, like OCSP's on-demand budget
 * (packages/ca/src/status/ocsp-responder.ts): checking a request's protection can cost a database read,
 * a secret derived in the HSM and up to MAX_PBM_ITERATIONS hashes, and an error answered to it an HSM
 * signature. Each request takes a place from its address's bucket before any of that (so a burst sent
 * at once cannot overrun it), and gives it back once it authenticates; failures keep theirs, and the
 * bucket refills at `refillPerSecond`. `burst` is also how many requests of one address may be
 * authenticating at the same moment: size it for the factory lines behind one address.
 */
export class CmpAuthBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limits: { readonly burst: number; readonly refillPerSecond: number },
    private readonly now: () => number = () => performance.now(),
  ) {}

  private bucket(address: string): { tokens: number; at: number } {
    const now = this.now();
    const b = this.buckets.get(address) ?? { tokens: this.limits.burst, at: now };
    b.tokens = Math.min(this.limits.burst, b.tokens + ((now - b.at) / 1000) * this.limits.refillPerSecond);
    b.at = now;
    // Many addresses (a scan): start again rather than grow; the refill makes the loss small.
    if (!this.buckets.has(address) && this.buckets.size >= 100_000) this.buckets.clear();
    this.buckets.set(address, b);
    return b;
  }

  /** A place for one request of `address`, or CMP_RATE_LIMITED (429) when it has spent its budget. */
  take(address: string): CmpAuthTicket {
    const b = this.bucket(address);
    if (b.tokens < 1) {
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / this.limits.refillPerSecond));
      throw new FleetError('CMP_RATE_LIMITED', `too many CMP requests from this address failed their protection check or are being checked; try again in ${wait} s`, { httpStatus: 429, details: { retryAfterSeconds: wait } });
    }
    b.tokens -= 1;
    let refunded = false;
    return {
      refund: () => {
        if (refunded) return;
        refunded = true;
        const back = this.bucket(address);
        back.tokens = Math.min(this.limits.burst, back.tokens + 1);
      },
    };
  }
}
