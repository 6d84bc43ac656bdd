/**
 * The shapes of a PKIMessage as read by pki-message.ts (RFC 9810 / RFC 4210 5.1, profiled by RFC 9483),
 * and the error a request the profile forbids is answered with: apart from the reader so responses and
 * protection checks can name them without the DER walking.
 */

/** PKIBody's CHOICE, by context tag (RFC 4210 5.1.2). */
export const BODY_TYPES = ['ir', 'ip', 'cr', 'cp', 'p10cr', 'popdecc', 'popdecr', 'kur', 'kup', 'krr', 'krp', 'rr', 'rp', 'ccr', 'ccp', 'ckuann', 'cann', 'rann', 'crlann', 'pkiconf', 'nested', 'genm', 'genp', 'error', 'certConf', 'pollReq', 'pollRep'] as const;
export type BodyType = (typeof BODY_TYPES)[number];

/** A request the profile forbids or this CA cannot read: answered with an error message, never a 5xx. */
export class CmpMessageError extends Error {
  constructor(
    message: string,
    /** The PKIFailureInfo bit the error message carries (RFC 4210 5.2.3). */
    readonly failInfo: 'badAlg' | 'badMessageCheck' | 'badRequest' | 'badTime' | 'badCertId' | 'badDataFormat' | 'wrongAuthority' | 'incorrectData' | 'missingTimeStamp' | 'badPOP' | 'certRevoked' | 'transactionIdInUse' | 'unsupportedVersion' | 'badSenderNonce' | 'badRecipientNonce' | 'notAuthorized' | 'systemUnavail' | 'systemFailure',
  ) {
    super(message);
  }
}

export interface AlgorithmId {
  readonly oid: string;
  /** The parameters' DER, if present. */
  readonly parameters?: Buffer;
}

export interface PkiHeader {
  readonly pvno: number;
  /** GeneralName, as sent (DER). */
  readonly sender: Buffer;
  readonly recipient: Buffer;
  readonly messageTime?: Date;
  readonly protectionAlg?: AlgorithmId;
  readonly senderKid?: Buffer;
  readonly transactionId?: Buffer;
  readonly senderNonce?: Buffer;
  readonly recipNonce?: Buffer;
  /** InfoTypeAndValue OIDs of generalInfo (implicitConfirm among them). */
  readonly generalInfo: readonly string[];
}

export interface CertTemplate {
  /** serialNumber [1], big-endian unsigned. */
  readonly serialNumber?: Buffer;
  /** issuer [3] and subject [5]: the Name's DER. */
  readonly issuer?: Buffer;
  readonly subject?: Buffer;
  /** publicKey [6]: a SubjectPublicKeyInfo's DER (re-tagged as SEQUENCE). */
  readonly publicKey?: Buffer;
  /** extensions [9]: the Extensions' DER (re-tagged as SEQUENCE). */
  readonly extensions?: Buffer;
}

export interface CertReqMsg {
  readonly certReqId: number;
  readonly template: CertTemplate;
  /** The CertRequest's DER: what a POPOSigningKey without poposkInput signs (RFC 4211 4.1). */
  readonly certRequestDer: Buffer;
  readonly popo?: { readonly kind: 'raVerified' } | { readonly kind: 'signature'; readonly algorithm: AlgorithmId; readonly signature: Buffer; readonly hasPoposkInput: boolean } | { readonly kind: 'other'; readonly tag: number };
}

export interface RevDetails {
  readonly template: CertTemplate;
  /** CRLReason from crlEntryDetails, if given. */
  readonly reason?: number;
}

/** InfoTypeAndValue (RFC 4210 5.3.19): the OID, and the value's DER when one was sent (ANY DEFINED BY infoType). */
export interface InfoTypeAndValue {
  readonly infoType: string;
  readonly value?: Buffer;
}

export interface CertStatus {
  readonly certHash: Buffer;
  readonly certReqId: number;
  /** PKIStatus, if statusInfo was given (0 accepted, 2 rejection). */
  readonly status?: number;
}

export type PkiBody =
  | { readonly type: 'ir' | 'cr' | 'kur'; readonly requests: readonly CertReqMsg[] }
  | { readonly type: 'p10cr'; readonly csr: Buffer }
  | { readonly type: 'rr'; readonly revocations: readonly RevDetails[] }
  /** GenMsgContent and GenRepContent (RFC 4210 5.3.19/5.3.20): infoTypes are infoValues' OIDs, for callers that need no value. */
  | { readonly type: 'genm' | 'genp'; readonly infoTypes: readonly string[]; readonly infoValues: readonly InfoTypeAndValue[] }
  | { readonly type: 'certConf'; readonly statuses: readonly CertStatus[] }
  | { readonly type: 'pollReq'; readonly certReqIds: readonly number[] }
  | { readonly type: 'pkiconf' }
  /** ErrorMsgContent: the PKIStatus, the PKIFailureInfo bits set (RFC 4210 5.2.3 numbering) and the texts. */
  | { readonly type: 'error'; readonly status: number; readonly failInfo: readonly number[]; readonly texts: readonly string[] }
  | { readonly type: Exclude<BodyType, 'ir' | 'cr' | 'kur' | 'p10cr' | 'rr' | 'genm' | 'genp' | 'certConf' | 'pollReq' | 'pkiconf' | 'error'>; readonly der: Buffer };

export interface PkiMessage {
  readonly der: Buffer;
  readonly header: PkiHeader;
  readonly body: PkiBody;
  /** ProtectedPart ::= SEQUENCE { header, body }: the bytes the protection covers, rebuilt from the bytes sent. */
  readonly protectedPart: Buffer;
  /** The protection BIT STRING's value (without its unused-bits byte). */
  readonly protection?: Buffer;
  /** extraCerts, each a Certificate's DER (the protecting certificate first, RFC 9483 3.3). */
  readonly extraCerts: readonly Buffer[];
}
