import { createHash, randomBytes } from 'node:crypto';
import { FleetError, isFleetError, type FleetConfig } from '@fleetpki/core';
import { CmpMessageError, buildResponse, inlinePbm, readPkiMessage, verifyPop, type CertReqMsg, type CertStatus, type PkiMessage, type RevDetails, type ResponseBody, type ResponseProtection } from '@fleetpki/cmp';
import { checkCsr, publicKeyFromSpki, readCertificateDeviceId, readCsrDeviceId, readTemplateDeviceId, type DevicePublicKey, type PossessionVerifier } from '@fleetpki/x509';
import type { RootCaKeyUpdate } from '../custody/root-generations.js';
import type { EnrolmentService, IssuedCertificate } from '../issuance/enrolment.js';
import type { EnrolmentLabel } from '../issuance/enrolment-labels.js';
import type { CaStatusGuard, SiteGuard } from '../sites/site-guard.js';
import type { RevocationService } from '../status/revocation.js';
import { answerGeneralMessage } from './cmp-general-messages.js';
import { authenticateCmpSender, type CmpCredentials, type CmpSender } from './cmp-sender.js';
import type { CmpStore } from './store.js';

export interface CmpServerDeps extends CmpCredentials {
  readonly config: FleetConfig;
  readonly enrolment: Pick<EnrolmentService, 'enrol' | 'renew'>;
  readonly revocations: Pick<RevocationService, 'revoke'>;
  /** Where a p10cr's CSR signature is checked. */
  readonly possession: PossessionVerifier;
  readonly store: CmpStore;
  readonly guard: Pick<SiteGuard, 'assertWritable'>;
  readonly caGuard: Pick<CaStatusGuard, 'assertActive'>;
  readonly caId: string;
  readonly threshold: { readonly certificates: number; readonly windowMinutes: number };
  /** Counts a certificate issued (metrics), as the other enrolment routes do. */
  readonly onIssued?: (profile: string, keyRole: string) => void;
  /** The root rollovers, oldest generation first (rootGenerations): answered to genm rootCaCert (RFC 9483 4.3.2). */
  readonly rootUpdates?: readonly RootCaKeyUpdate[];
}

export interface CmpAnswer {
  readonly httpStatus: number;
  readonly der: Buffer;
  readonly retryAfterSeconds?: number;
  /** Whether the request's protection proved its sender (false: a failed authentication, to be counted). */
  readonly authenticated: boolean;
  /** Why the request was answered with an error message: its FleetError code, or CMP_<failInfo> (metrics). */
  readonly refusal?: string;
}

const OID_IT_IMPLICIT_CONFIRM = '1.3.6.1.5.5.7.4.13';
/** RFC 5280 CRLReason cessationOfOperation: a certificate its device refused in certConf (RFC 9483 4.1.1). */
const REASON_CESSATION = 5;

/** A FleetError from enrolment or revocation, as the PKIFailureInfo a CMP client understands. */
const FAIL_INFO_OF: Record<string, CmpMessageError['failInfo']> = {
  CERTIFICATE_EXISTS: 'badRequest',
  // Another enrolment of this device is in flight: try again shortly.
  CERTIFICATE_PENDING: 'systemUnavail',
  // The label is held for an administrator's approval: the same key again once approved (no polling here).
  ENROLMENT_APPROVAL_PENDING: 'systemUnavail',
  ENROLMENT_REQUEST_REFUSED: 'notAuthorized',
  EUI64_NOT_AVAILABLE: 'notAuthorized',
  EUI64_OUTSIDE_RANGE: 'notAuthorized',
  REENROL_MISMATCH: 'badCertId',
  REENROL_CERTIFICATE_UNKNOWN: 'badCertId',
  REENROL_CERTIFICATE_REVOKED: 'certRevoked',
  REENROL_CERTIFICATE_NOT_LIVE: 'certRevoked',
  PUBLIC_KEY_INVALID: 'badDataFormat',
  DUAL_CONTROL_THRESHOLD: 'notAuthorized',
  CA_NOT_ACTIVE: 'wrongAuthority',
};
/** Answered 503 with Retry-After: the request was fine, this site cannot write now. */
const UNAVAILABLE = new Set(['SITE_STANDBY', 'SITE_NOT_LEASED', 'STANDBY_UNAVAILABLE', 'ENROLMENT_TIMED_OUT']);

/**
 * The CMP server (RFC 9810/4210 profiled by RFC 9483): reads a PKIMessage, checks its protection
 * before anything is written, and answers ir/cr/p10cr (enrolment by a factory), kur (re-key by the
 * device's current certificate), rr (revocation by the device itself or an officer, under the
 * dual-control threshold), certConf and genm. Issuance goes through the EnrolmentService, like the JSON
 * API and EST: same intents, audit rows and guard. Answers are CMP messages (errors too), protected by
 * the request's MAC secret or the site's CMP protection key.
 */
export class CmpServer {
  constructor(private readonly deps: CmpServerDeps) {}

  /**
   * One request, one answer. `onAuthenticated` runs as soon as the protection has proved the sender
   * (the caller gives back what it reserved for an unauthenticated request).
   */
  async handle(body: Buffer, label: EnrolmentLabel, onAuthenticated?: () => void): Promise<CmpAnswer> {
    let message: PkiMessage | undefined;
    let sender: CmpSender | undefined;
    try {
      message = readPkiMessage(body);
      this.checkHeader(message);
      sender = await authenticateCmpSender(message, this.deps);
      onAuthenticated?.();
      const answer = await this.dispatch(message, sender, label);
      return { httpStatus: 200, authenticated: true, der: await this.respond(message, sender, answer.body, answer.implicitConfirm) };
    } catch (err) {
      const authenticated = sender !== undefined;
      if (err instanceof CmpMessageError) return { httpStatus: 200, authenticated, refusal: `CMP_${err.failInfo.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, der: await this.respond(message, sender, { type: 'error', failInfo: err.failInfo, text: err.message }) };
      if (err instanceof FleetError) {
        const text = `${err.code}: ${err.message}`;
        if (UNAVAILABLE.has(err.code)) return { httpStatus: 503, authenticated, refusal: err.code, retryAfterSeconds: 10, der: await this.respond(message, sender, { type: 'error', failInfo: 'systemUnavail', text }) };
        return { httpStatus: 200, authenticated, refusal: err.code, der: await this.respond(message, sender, { type: 'error', failInfo: FAIL_INFO_OF[err.code] ?? (err.httpStatus === 403 || err.httpStatus === 401 ? 'notAuthorized' : err.httpStatus >= 500 ? 'systemFailure' : 'badRequest'), text }) };
      }
      throw err;
    }
  }

  /** RFC 9483 3.1: pvno, a transactionID and a senderNonce of at least 128 bits, a messageTime near ours. */
  private checkHeader(message: PkiMessage): void {
    const h = message.header;
    if (h.pvno !== 2 && h.pvno !== 3) throw new CmpMessageError(`pvno ${h.pvno}: this server speaks cmp2000 (2) and cmp2021 (3)`, 'unsupportedVersion');
    if (!h.transactionId || h.transactionId.length < 16) throw new CmpMessageError('the header needs a transactionID of at least 128 bits (RFC 9483 3.1)', 'badRequest');
    if (!h.senderNonce || h.senderNonce.length < 16) throw new CmpMessageError('the header needs a senderNonce of at least 128 bits (RFC 9483 3.1)', 'badSenderNonce');
    if (h.messageTime) {
      const skew = Math.abs(h.messageTime.getTime() - Date.now()) / 1000;
      if (skew > this.deps.config.cmp.maxClockSkewSeconds) throw new CmpMessageError(`messageTime ${h.messageTime.toISOString()} is ${Math.round(skew)} s from this server's clock (at most ${this.deps.config.cmp.maxClockSkewSeconds} s)`, 'badTime');
    }
  }

  private async dispatch(message: PkiMessage, sender: CmpSender, label: EnrolmentLabel): Promise<{ body: ResponseBody; implicitConfirm?: boolean }> {
    const body = message.body;
    switch (body.type) {
      case 'ir':
      case 'cr':
      case 'kur':
        return this.certificateRequest(message, sender, label, body.type, body.requests);
      case 'p10cr':
        return this.certificateRequest(message, sender, label, 'p10cr', [], body.csr);
      case 'rr':
        return { body: await this.revocationRequest(message, sender, body.revocations) };
      case 'certConf':
        return { body: await this.certificateConfirmation(message, sender, body.statuses) };
      case 'genm':
        return { body: answerGeneralMessage(body.infoValues, this.deps) };
      case 'pollReq':
        throw new CmpMessageError('nothing is waiting here: this server answers every request at once (no pollRep)', 'badRequest');
      default:
        throw new CmpMessageError(`${body.type} is not a request this server answers (ir, cr, p10cr, kur, rr, certConf, genm)`, 'badRequest');
    }
  }

  private async certificateRequest(message: PkiMessage, sender: CmpSender, label: EnrolmentLabel, type: 'ir' | 'cr' | 'kur' | 'p10cr', requests: readonly CertReqMsg[], csr?: Buffer): Promise<{ body: ResponseBody; implicitConfirm?: boolean }> {
    if (type === 'kur' ? sender.kind !== 'device' : sender.kind === 'device' || (sender.kind === 'person' && sender.principal.role !== 'factory')) {
      throw new CmpMessageError(type === 'kur' ? "kur is authenticated by the device's current certificate (signature protection)" : `${type} is for a factory: its MAC reference or its client certificate`, 'notAuthorized');
    }
    let certReqId = -1;
    let publicKey: DevicePublicKey;
    let eui64: ReturnType<typeof readCsrDeviceId>['eui64'];
    if (csr) {
      publicKey = await checkCsr(csr, this.deps.possession);
      eui64 = readCsrDeviceId(csr).eui64;
    } else {
      if (requests.length !== 1) throw new CmpMessageError(`${requests.length} certificate requests in one message; RFC 9483 4.1 allows one`, 'badRequest');
      const request = requests[0]!;
      certReqId = request.certReqId;
      verifyPop(request);
      publicKey = publicKeyFromSpki(request.template.publicKey!);
      eui64 = this.templateDevice(request, sender);
    }
    await this.deps.guard.assertWritable();
    await this.deps.caGuard.assertActive(this.deps.caId);
    const transactionId = message.header.transactionId!;
    if (!(await this.deps.store.openTransaction({ transactionId, bodyType: type, sender: sender.actor }))) throw new CmpMessageError('this transactionID was used before (a replayed or repeated request)', 'transactionIdInUse');
    const enrolment = { eui64, keyRole: label.keyRole, profileId: label.profileId, deviceType: 'smart-meter', publicKey, actor: sender.actor, protocol: 'cmp' as const };
    let issued: IssuedCertificate;
    try {
      if (sender.kind === 'device') issued = await this.deps.enrolment.renew(enrolment, { serial: sender.serial, der: sender.der });
      else issued = await this.deps.enrolment.enrol({ ...enrolment, manufacturerId: sender.kind === 'secret' ? sender.manufacturerId : sender.principal.manufacturerId! });
    } catch (err) {
      await this.deps.store.settleTransaction(transactionId, 'open', 'refused');
      throw err;
    }
    if (!issued.reused) this.deps.onIssued?.(label.profileId, label.keyRole);
    const implicitConfirm = this.deps.config.cmp.implicitConfirm && message.header.generalInfo.includes(OID_IT_IMPLICIT_CONFIRM);
    const serialHex = issued.serial.toString('hex');
    await this.deps.store.settleTransaction(
      transactionId,
      'open',
      implicitConfirm ? 'confirmed' : 'waiting',
      // A certificate given back (the key was enrolled before: a retry, or a replayed CSR) is not this transaction's to revoke.
      { certificateSerial: issued.serial, certificateSha256: createHash('sha256').update(issued.der).digest(), issuedInTransaction: !issued.reused },
      implicitConfirm ? { actor: sender.actor, action: 'cmp.certificate.confirmed', subject: serialHex, details: { transaction: transactionId.toString('hex'), implicit: true } } : undefined,
    );
    const responseType = type === 'ir' ? 'ip' : type === 'kur' ? 'kup' : 'cp';
    // The root for a client that trusts nothing yet (RFC 9483 4.1.1: caPubs answer an ir with MAC).
    const caPubs = type === 'ir' && sender.kind === 'secret' ? [this.deps.chainDer[this.deps.chainDer.length - 1]!] : undefined;
    return { body: { type: responseType, certReqId, certificate: issued.der, ...(caPubs ? { caPubs } : {}) }, implicitConfirm };
  }

  /** The template's device (subject serialNumber or hardwareModuleName); a kur without one keeps the presented certificate's. */
  private templateDevice(request: CertReqMsg, sender: CmpSender): ReturnType<typeof readCsrDeviceId>['eui64'] {
    try {
      return readTemplateDeviceId(request.template.subject, request.template.extensions).eui64;
    } catch (err) {
      if (sender.kind === 'device' && isFleetError(err, 'CSR_DEVICE_ID_MISSING')) return readCertificateDeviceId(sender.der).eui64;
      throw err;
    }
  }

  private async revocationRequest(message: PkiMessage, sender: CmpSender, revocations: readonly RevDetails[]): Promise<ResponseBody> {
    if (revocations.length !== 1) throw new CmpMessageError(`${revocations.length} revocations in one message; RFC 9483 4.2 allows one`, 'badRequest');
    const rev = revocations[0]!;
    const serial = rev.template.serialNumber;
    if (!serial || serial.length === 0 || serial.length > 20) throw new CmpMessageError('the revocation template must give the serialNumber of the certificate to revoke', 'badCertId');
    const normalized = Buffer.from(serial.subarray(serial.findIndex((b, i) => b !== 0 || i === serial.length - 1)));
    if (sender.kind === 'device') {
      if (!normalized.equals(sender.serial)) throw new CmpMessageError("a device revokes only its own certificate: the template's serial is not the protecting certificate's", 'notAuthorized');
    } else if (sender.kind !== 'person' || !['revocation-officer', 'administrator'].includes(sender.principal.role)) {
      throw new CmpMessageError('rr is for the device itself (its certificate) or a revocation officer (client certificate)', 'notAuthorized');
    }
    const reason = rev.reason ?? 0;
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7 || reason === 8) throw new CmpMessageError(`CRLReason ${reason} cannot be used here`, 'badRequest');
    await this.deps.guard.assertWritable();
    const transactionId = message.header.transactionId!;
    if (!(await this.deps.store.openTransaction({ transactionId, bodyType: 'rr', sender: sender.actor }))) throw new CmpMessageError('this transactionID was used before (a replayed or repeated request)', 'transactionIdInUse');
    const person = sender.kind === 'person' ? sender.principal : undefined;
    let outcome;
    try {
      outcome = await this.deps.revocations.revoke({ target: { kind: 'serials', serials: [normalized] }, reason, requestedBy: sender.actor, manufacturerId: null, personId: person?.personId ?? null, approvalId: null, ...(person ? { threshold: this.deps.threshold } : {}) });
    } catch (err) {
      await this.deps.store.settleTransaction(transactionId, 'open', 'refused');
      throw err;
    }
    await this.deps.store.settleTransaction(transactionId, 'open', 'done', { certificateSerial: normalized });
    if (outcome.notFound.length) throw new CmpMessageError(`no certificate ${normalized.toString('hex')} was issued by this CA`, 'badCertId');
    if (outcome.revoked === 0) throw new CmpMessageError(`certificate ${normalized.toString('hex')} is already revoked`, 'certRevoked');
    return { type: 'rp', accepted: [true] };
  }

  /** certConf (RFC 9483 4.1.1): the certificate answered in this transaction is delivered (or refused and then revoked). */
  private async certificateConfirmation(message: PkiMessage, sender: CmpSender, statuses: readonly CertStatus[]): Promise<ResponseBody> {
    const transactionId = message.header.transactionId!;
    const transaction = await this.deps.store.getTransaction(transactionId);
    if (!transaction || transaction.sender !== sender.actor) throw new CmpMessageError('no certificate of this sender waits for confirmation in this transaction', 'badRequest');
    if (transaction.status !== 'waiting') throw new CmpMessageError(`this transaction is ${transaction.status}, not waiting for a certConf`, 'badRequest');
    if (!transaction.responseNonce || !message.header.recipNonce?.equals(transaction.responseNonce)) throw new CmpMessageError("recipNonce is not the senderNonce of this server's answer", 'badRecipientNonce');
    if (statuses.length !== 1) throw new CmpMessageError(`${statuses.length} certificate statuses; one certificate was answered`, 'badRequest');
    const status = statuses[0]!;
    if (!transaction.certificateSha256 || !status.certHash.equals(transaction.certificateSha256)) throw new CmpMessageError('certHash is not the hash of the certificate answered', 'badCertId');
    await this.deps.guard.assertWritable();
    const serialHex = transaction.certificateSerial!.toString('hex');
    if (status.status === undefined || status.status === 0 || status.status === 1) {
      if (!(await this.deps.store.settleTransaction(transactionId, 'waiting', 'confirmed', {}, { actor: sender.actor, action: 'cmp.certificate.confirmed', subject: serialHex, details: { transaction: transactionId.toString('hex') } }))) {
        throw new CmpMessageError('this transaction was settled meanwhile', 'badRequest');
      }
    } else {
      // The client refused the certificate. One signed for this transaction must not stay valid unseen
      // (RFC 9483 4.1.1); one it was given back (issued earlier, to this key) is not the client's to
      // revoke: that goes through the revocation rules (an officer, dual control past the threshold).
      const revoke = transaction.issuedInTransaction;
      const details = { transaction: transactionId.toString('hex'), revoked: revoke, ...(revoke ? {} : { why: 'the certificate was issued before this transaction; revoke it through a revocation officer' }) };
      if (!(await this.deps.store.settleTransaction(transactionId, 'waiting', 'rejected', {}, { actor: sender.actor, action: 'cmp.certificate.rejected', subject: serialHex, details }))) {
        throw new CmpMessageError('this transaction was settled meanwhile', 'badRequest');
      }
      if (revoke) await this.deps.revocations.revoke({ target: { kind: 'serials', serials: [transaction.certificateSerial!] }, reason: REASON_CESSATION, requestedBy: sender.actor, manufacturerId: null });
    }
    return { type: 'pkiconf' };
  }

  /**
   * The answer, protected as RFC 9483 3.2 says: with the request's MAC secret when the request was
   * MAC-protected (the client may trust nothing else yet), otherwise signed by the site's CMP key with
   * its certificate and the organisation CA in extraCerts. The senderNonce we send is kept for certConf.
   */
  private async respond(request: PkiMessage | undefined, sender: CmpSender | undefined, body: ResponseBody, implicitConfirm = false): Promise<Buffer> {
    const key = await this.deps.protectionKey();
    const mac = sender?.kind === 'secret';
    const protection: ResponseProtection = sender?.kind === 'secret' ? { kind: 'mac', secret: sender.secret, senderKid: sender.senderKid, pbm: this.deps.pbm ?? inlinePbm } : { kind: 'signature', sign: (data) => key.sign(data), senderKid: key.keyId };
    const senderNonce = randomBytes(16);
    const der = await buildResponse({ ...(request ? { request } : {}), sender: key.subjectDer, protection, extraCerts: mac ? [] : key.chain, implicitConfirm, senderNonce }, body);
    if (request && (body.type === 'ip' || body.type === 'cp' || body.type === 'kup') && !implicitConfirm) {
      await this.deps.store.settleTransaction(request.header.transactionId!, 'waiting', 'waiting', { responseNonce: senderNonce });
    }
    return der;
  }
}

