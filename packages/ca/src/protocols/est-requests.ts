import { FleetError, isUuid } from '@fleetpki/core';
import type { EnrolmentRequestRecord } from '@fleetpki/store';
import type { SiteGuard } from '../sites/site-guard.js';
import type { EnrolmentRequestStore } from './store.js';

/** An enrolment held for an administrator's approval because its label is held. */
export type HeldEnrolmentRequest = EnrolmentRequestRecord;

/**
 * The administrators' side of held enrolment requests (every protocol's; they were EST's first): list
 * them, approve or refuse one, once. The factory's client polls with the same device key; its next
 * request after an approval, by any protocol, gets the certificate.
 */
export class EnrolmentRequestDecisions {
  constructor(
    private readonly store: EnrolmentRequestStore,
    private readonly guard: Pick<SiteGuard, 'assertWritable'>,
  ) {}

  list(status: HeldEnrolmentRequest['status']): Promise<HeldEnrolmentRequest[]> {
    return this.store.listRequests(status);
  }

  /** The request as decided; EST_REQUEST_NOT_FOUND (404), or EST_REQUEST_DECIDED (409) when it was decided before. */
  async decide(id: string, decision: 'approved' | 'refused', decidedBy: string): Promise<HeldEnrolmentRequest> {
    await this.guard.assertWritable();
    const found = isUuid(id) ? await this.store.getRequest(id) : undefined;
    if (!found) throw new FleetError('EST_REQUEST_NOT_FOUND', `no held enrolment request ${id.slice(0, 40)}`, { httpStatus: 404 });
    if (!(await this.store.decideRequest(id, decision, decidedBy))) {
      throw new FleetError('EST_REQUEST_DECIDED', `enrolment request ${id} was already ${found.status}`, { httpStatus: 409 });
    }
    return (await this.store.getRequest(id))!;
  }
}
