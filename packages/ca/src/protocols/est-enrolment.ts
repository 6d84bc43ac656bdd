import { FleetError, isFleetError } from '@fleetpki/core';
import { checkCsr, getProfile, readCsrDeviceId, type PossessionVerifier } from '@fleetpki/x509';
import { auditActor, type Principal } from '../access/api-tokens.js';
import type { EnrolmentService, IssuedCertificate } from '../issuance/enrolment.js';
import type { EnrolmentLabel } from '../issuance/enrolment-labels.js';
import type { CaStatusGuard, SiteGuard } from '../sites/site-guard.js';

export interface EstEnrolmentDeps {
  readonly enrolment: Pick<EnrolmentService, 'enrol' | 'renew'>;
  readonly guard: Pick<SiteGuard, 'assertWritable'>;
  readonly caGuard: Pick<CaStatusGuard, 'assertActive'>;
  readonly caId: string;
  /** Where the CSR's proof of possession is checked. */
  readonly possession: PossessionVerifier;
}

/** One simpleenroll or simplereenroll: the CSR (DER), and who asked. */
export interface EstEnrolmentRequest {
  readonly csr: Buffer;
  readonly label: EnrolmentLabel;
  /** The factory (simpleenroll), authenticated by the HTTP layer. */
  readonly principal?: Principal | undefined;
  /** The device certificate a re-enrolment presented in the TLS handshake (simplereenroll). */
  readonly device?: { readonly serial: Buffer; readonly der: Buffer } | undefined;
}

/** The certificate, or RFC 7030 4.2.3's "come back later" (202 with Retry-After and this body). */
export type EstOutcome =
  | { readonly kind: 'issued'; readonly certificate: IssuedCertificate; readonly profileId: string }
  | { readonly kind: 'later'; readonly retryAfterSeconds: string; readonly body: Record<string, unknown> };

/**
 * Enrolment over EST (RFC 7030): the same enrolment service, audit rows and guards as the JSON API and
 * CMP; only the envelope differs, and the envelope is the service's (PKCS#10 in, certs-only CMS out).
 */
export class EstEnrolment {
  constructor(private readonly deps: EstEnrolmentDeps) {}

  async enrol(request: EstEnrolmentRequest): Promise<EstOutcome> {
    const publicKey = await checkCsr(request.csr, this.deps.possession);
    const { eui64 } = readCsrDeviceId(request.csr);
    const profile = getProfile(request.label.profileId);
    await this.deps.guard.assertWritable();
    await this.deps.caGuard.assertActive(this.deps.caId);
    const { principal, device } = request;
    const actor = principal ? auditActor(principal) : `device:${eui64}`;
    const enrolment = { eui64, keyRole: request.label.keyRole, profileId: profile.id, deviceType: 'smart-meter', publicKey, actor, protocol: 'est' as const };
    try {
      const certificate = device ? await this.deps.enrolment.renew(enrolment, device) : await this.deps.enrolment.enrol({ ...enrolment, manufacturerId: principal!.manufacturerId! });
      return { kind: 'issued', certificate, profileId: profile.id };
    } catch (err) {
      // RFC 7030 4.2.3's "come back later": the label is held for an administrator (the enrolment service
      // holds it for every protocol; EST keeps the codes it answered with before), or another enrolment
      // of this device and role is in flight.
      const retryAfter = (err: FleetError) => String((err.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds ?? 1);
      if (isFleetError(err, 'ENROLMENT_APPROVAL_PENDING')) return { kind: 'later', retryAfterSeconds: retryAfter(err), body: { code: 'EST_APPROVAL_PENDING', message: err.message, details: err.details } };
      if (isFleetError(err, 'ENROLMENT_REQUEST_REFUSED')) throw new FleetError('EST_REQUEST_REFUSED', err.message, { httpStatus: 403, ...(err.details ? { details: err.details } : {}) });
      if (isFleetError(err, 'CERTIFICATE_PENDING')) return { kind: 'later', retryAfterSeconds: retryAfter(err), body: err.toJSON() };
      throw err;
    }
  }
}
