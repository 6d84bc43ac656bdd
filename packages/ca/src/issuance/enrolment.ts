import { createHash } from 'node:crypto';
import { FleetError, eui64ToBytes, type Eui64, type KeyRole, type SiteId } from '@fleetpki/core';
import type { CertificateRow, EnrolmentProtocol, IntentRow } from '@fleetpki/store';
import type { DevicePublicKey } from '@fleetpki/x509';
import type { EnrolmentLabel } from './enrolment-labels.js';
import { deviceRefusalError } from './device-ownership.js';
import { GroupCommitter } from './group-commit.js';
import { signCertificate, type IssuingCa } from './issuing-ca.js';
import { issuanceTime, prepareIssuance } from './prepare-issuance.js';
import type { EnrolmentStore } from './store.js';
import type { CaStatusGuard, SiteGuard } from '../sites/site-guard.js';

export interface EnrolmentRequest {
  readonly eui64: Eui64;
  readonly keyRole: KeyRole;
  readonly profileId: string;
  readonly deviceType: string;
  readonly publicKey: DevicePublicKey;
  readonly manufacturerId: string;
  /** Who asked (token name), for the audit log. */
  readonly actor: string;
  /** Through which protocol (api when absent): shown with a held request. */
  readonly protocol?: EnrolmentProtocol;
}

export interface IssuedCertificate {
  readonly serial: Buffer;
  readonly der: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly crlShard: number;
  /** The device already had this certificate for this key (a retry): nothing was signed now. */
  readonly reused: boolean;
}

/**
 * What must hold before an enrolment records or signs anything: this site may write (not a standby,
 * lease held, the synchronous standby answering) and the issuing CA is active (not revoked).
 */
export interface EnrolmentGuards {
  readonly site: Pick<SiteGuard, 'assertWritable'>;
  readonly ca: Pick<CaStatusGuard, 'assertActive'>;
}

/** Work of the caller that must fail, if it fails, before anything is recorded (e.g. device keys), run once the guards passed. */
export type BeforeEnrolment = () => Promise<void>;

/**
 * Online enrolment: prepare the certificate (prepareIssuance, as a batch chunk does), commit the intent
 * (and its replication to the standby) before the HSM signs, sign, store the certificate.
 * Intents and certificates of concurrent requests are group-committed.
 */
export class EnrolmentService {
  private readonly intents: GroupCommitter<IntentRow, boolean>;
  private readonly certificates: GroupCommitter<CertificateRow, boolean>;
  private readonly intentTimeoutSeconds: number;
  private readonly afterIntent: (() => void) | undefined;
  private readonly holds: { readonly labels: readonly EnrolmentLabel[]; readonly retryAfterSeconds: number };

  constructor(
    private readonly ca: IssuingCa,
    private readonly store: EnrolmentStore,
    private readonly site: SiteId,
    private readonly serialPrefix: number,
    /** Asked before every enrolment and re-enrolment, whichever protocol calls (SITE_STANDBY, SITE_NOT_LEASED, STANDBY_UNAVAILABLE, CA_NOT_ACTIVE). */
    private readonly guards: EnrolmentGuards,
    options: {
      maxBatch?: number;
      maxConcurrent?: number;
      /** An online intent with no certificate after this long is released (default 60 s). */
      intentTimeoutSeconds?: number;
      /** Test hook: runs after the intent committed and before the HSM signs (crash tests). */
      afterIntent?: () => void;
      /** Labels whose new certificates wait for an administrator's approval (FLEETPKI_APPROVAL_LABELS), and the Retry-After of a held answer. */
      holds?: { readonly labels: readonly EnrolmentLabel[]; readonly retryAfterSeconds: number };
    } = {},
  ) {
    this.intentTimeoutSeconds = options.intentTimeoutSeconds ?? 60;
    this.afterIntent = options.afterIntent;
    this.holds = options.holds ?? { labels: [], retryAfterSeconds: 60 };
    const batching = { maxBatch: options.maxBatch ?? 256, maxConcurrent: options.maxConcurrent ?? 3 };
    // One statement per group; its audit rows carry each request's own actor.
    this.intents = new GroupCommitter(async (rows) => {
      const recorded = await store.recordIntents(site, rows);
      return rows.map((r) => recorded.has(r.serial.toString('hex')));
    }, batching);
    this.certificates = new GroupCommitter(async (rows) => {
      const released = await store.storeCertificates(site, rows);
      return rows.map((r) => !released.has(r.serial.toString('hex')));
    }, batching);
  }

  /**
   * Enrols a device key. When (device, role, profile) is already taken: the same key gets its
   * certificate back (a retry after a lost answer: 200, nothing signed); a revoked certificate is
   * superseded (a new certificate, audited); an intent that never got its certificate within the intent
   * timeout is released first; anything else is CERTIFICATE_EXISTS (another key) or CERTIFICATE_PENDING.
   */
  async enrol(request: EnrolmentRequest, before?: BeforeEnrolment): Promise<IssuedCertificate> {
    await this.assertMayIssue();
    await before?.();
    await this.assertApproved(request);
    return this.enrolOnce(request, true);
  }

  /**
   * The guards, in the order the routes asked them before they moved here: the site first, then the CA.
   * enrol() and renew() ask them themselves; a protocol front asks here first as well, before it parses
   * and checks a request (a CSR's proof of possession, a raw key's statement), so a standby answers 503
   * with Retry-After at once, as it did, instead of spending its CPU and database on a request it refuses.
   */
  async assertMayIssue(): Promise<void> {
    await this.guards.site.assertWritable();
    await this.guards.ca.assertActive(this.ca.record.id);
  }

  /**
   * A held label (its profile and key role) issues only what an administrator approved, whichever
   * protocol asks: the first request records a pending request (ENROLMENT_APPROVAL_PENDING, 202 with
   * Retry-After), and the same device key asked again after the approval, by any protocol, enrols.
   * Re-enrolment (renew) is not held: the device already holds an approved certificate of that label.
   */
  private async assertApproved(request: EnrolmentRequest): Promise<void> {
    const label = this.holds.labels.find((l) => l.profileId === request.profileId && l.keyRole === request.keyRole);
    if (!label) return;
    const held = await this.store.holdRequest(this.site, {
      label: label.label,
      manufacturerId: request.manufacturerId,
      eui64: eui64ToBytes(request.eui64),
      publicKeySha256: createHash('sha256').update(request.publicKey.spki).digest(),
      protocol: request.protocol ?? 'api',
      requestedBy: request.actor,
    });
    if (held.status === 'approved') return;
    if (held.status === 'refused') throw new FleetError('ENROLMENT_REQUEST_REFUSED', `enrolment request ${held.id} (label ${label.label}) was refused by ${held.decidedBy ?? 'an administrator'}`, { httpStatus: 403, details: { request: held.id } });
    throw new FleetError('ENROLMENT_APPROVAL_PENDING', `label ${label.label} (profile ${label.profileId}, ${label.keyRole}) needs an administrator's approval: request ${held.id}; send the same key again after ${this.holds.retryAfterSeconds} s`, {
      httpStatus: 202,
      details: { request: held.id, retryAfterSeconds: this.holds.retryAfterSeconds },
    });
  }

  /**
   * Re-enrolment (EST simplereenroll; CMP kur later): the device authenticated with `presentedSerial`,
   * its current certificate (the caller checked the chain and that the peer holds its key). The new
   * key gets a certificate for the same device, role and profile, and the presented one is superseded:
   * its intent retired (kind 'renewed', audited), the certificate still good until revoked. A retry
   * after a lost answer presents the superseded certificate again and gets the live one back when the
   * key matches; a crash between the retirement and the new intent leaves the device able to retry.
   * The same key as the presented certificate changes nothing (no profile here has an expiry to renew):
   * the presented certificate comes back, reused. `presentedCertificate` is what TLS saw: the stored
   * certificate with its serial must be byte-identical.
   */
  async renew(renewal: Omit<EnrolmentRequest, 'manufacturerId'>, presentedCertificate: { serial: Buffer; der: Buffer }): Promise<IssuedCertificate> {
    await this.assertMayIssue();
    const presentedSerial = presentedCertificate.serial;
    const presented = await this.store.findPresentedCertificate(presentedSerial);
    if (!presented || !presented.der.equals(presentedCertificate.der)) throw new FleetError('REENROL_CERTIFICATE_UNKNOWN', 'the certificate presented is not a device certificate this CA issued', { httpStatus: 403 });
    // The device's manufacturer stays its manufacturer: nobody else's factory is involved.
    const request: EnrolmentRequest = { ...renewal, manufacturerId: presented.manufacturerId };
    const eui64 = eui64ToBytes(request.eui64);
    if (!presented.eui64.equals(eui64) || presented.keyRole !== request.keyRole || presented.profile !== request.profileId) {
      throw new FleetError(
        'REENROL_MISMATCH',
        `the certificate presented is for device ${presented.eui64.toString('hex').toUpperCase()} (${presented.keyRole}, ${presented.profile}); re-enrolment is for that same device, role and profile, not ${request.eui64} (${request.keyRole}, ${request.profileId})`,
        { httpStatus: 403 },
      );
    }
    if (presented.revoked) throw new FleetError('REENROL_CERTIFICATE_REVOKED', `certificate ${presentedSerial.toString('hex')} is revoked; a revoked device re-enrols through its factory`, { httpStatus: 403 });
    if (presented.live) {
      if (presented.der.includes(request.publicKey.point.subarray(1, 33))) {
        const existing = await this.store.findActiveEnrolment(eui64, request.keyRole, request.profileId);
        const cert = existing?.certificate;
        if (existing?.serial.equals(presentedSerial) && cert) return { serial: presentedSerial, der: cert.der, notBefore: cert.notBefore, notAfter: cert.notAfter, crlShard: cert.crlShard, reused: true };
      }
      // Lost to a concurrent re-enrolment: the conflict path below answers (its key, or CERTIFICATE_EXISTS).
      await this.store.retireIntent(this.site, request.actor, presentedSerial, { kind: 'renewed' });
    } else if (!presented.renewed) {
      throw new FleetError('REENROL_CERTIFICATE_NOT_LIVE', `certificate ${presentedSerial.toString('hex')} is no longer the device's certificate`, { httpStatus: 403 });
    }
    return this.enrolOnce(request, false);
  }

  private async enrolOnce(request: EnrolmentRequest, mayResolve: boolean): Promise<IssuedCertificate> {
    const eui64 = eui64ToBytes(request.eui64);
    const prepared = prepareIssuance(this.ca, this.serialPrefix, { profileId: request.profileId, keyRole: request.keyRole, eui64, publicKeySpki: request.publicKey.spki }, issuanceTime());
    const { serial, notBefore, notAfter, crlShard } = prepared;

    const recorded = await this.intents.submit({
      serial,
      caId: this.ca.record.id,
      eui64,
      keyRole: request.keyRole,
      profile: request.profileId,
      tbsSha256: prepared.tbsSha256,
      manufacturerId: request.manufacturerId,
      deviceType: request.deviceType,
      actor: request.actor,
    });
    if (!recorded) return this.resolveConflict(request, eui64, mayResolve);
    this.afterIntent?.();

    const der = await signCertificate(this.ca, prepared.linted);
    const stored = await this.certificates.submit({ serial, caId: this.ca.record.id, eui64, keyRole: request.keyRole, profile: request.profileId, der, notBefore, notAfter, crlShard, actor: request.actor });
    if (!stored) throw new FleetError('ENROLMENT_TIMED_OUT', `the enrolment of ${request.eui64} took longer than ${this.intentTimeoutSeconds} s and was released; enrol again`, { httpStatus: 503 });
    return { serial, der, notBefore, notAfter, crlShard, reused: false };
  }

  private async resolveConflict(request: EnrolmentRequest, eui64: Buffer, mayResolve: boolean): Promise<IssuedCertificate> {
    // Not the manufacturer's device (outside its EUI-64 ranges): the intent writer recorded nothing.
    const why = await this.store.explainRefusedIntent(eui64, request.manufacturerId);
    if (why !== 'already-enrolled') throw deviceRefusalError(request.eui64, request.manufacturerId, why);
    const existing = await this.store.findActiveEnrolment(eui64, request.keyRole, request.profileId);
    const cert = existing?.certificate;
    // The same key: the x coordinate of its point is in the stored certificate (DER or C509 alike).
    if (existing && cert && !cert.revoked && cert.der.includes(request.publicKey.point.subarray(1, 33))) {
      return { serial: existing.serial, der: cert.der, notBefore: cert.notBefore, notAfter: cert.notAfter, crlShard: cert.crlShard, reused: true };
    }
    if (mayResolve && existing && cert?.revoked && (await this.store.retireIntent(this.site, request.actor, existing.serial, { kind: 'revoked' }))) {
      return this.enrolOnce(request, false);
    }
    if (mayResolve && existing && !cert && !existing.batchId && existing.ageSeconds > this.intentTimeoutSeconds && (await this.store.retireIntent(this.site, request.actor, existing.serial, { kind: 'stale', olderThanSeconds: this.intentTimeoutSeconds }))) {
      return this.enrolOnce(request, false);
    }
    // In flight on the other site when it stopped acting (a failover): this site writes now, so the
    // other site's database is no longer the primary and that certificate can never be stored. Waiting
    // out the intent timeout would keep the device (and a factory line retrying it) stuck for a minute.
    if (mayResolve && existing && !cert && !existing.batchId && existing.site !== this.site && (await this.store.retireIntent(this.site, request.actor, existing.serial, { kind: 'abandoned', bySite: existing.site }))) {
      return this.enrolOnce(request, false);
    }
    if (existing && !cert) {
      throw new FleetError('CERTIFICATE_PENDING', `device ${request.eui64} has a ${request.keyRole} enrolment in progress since ${existing.createdAt.toISOString()}; if it does not complete it is released after ${this.intentTimeoutSeconds} s`, {
        httpStatus: 409,
        details: { retryAfterSeconds: Math.max(1, Math.ceil(this.intentTimeoutSeconds - existing.ageSeconds)) },
      });
    }
    throw new FleetError('CERTIFICATE_EXISTS', `device ${request.eui64} already has a ${request.keyRole} certificate under profile ${request.profileId} for another key`, { httpStatus: 409 });
  }
}
