import { X509Certificate } from 'node:crypto';
import { CmpMessageError, OID_PASSWORD_BASED_MAC, inlinePbm, readPbmParameters, verifyMacProtection, verifySignatureProtection, type PbmComputer, type PkiMessage } from '@fleetpki/cmp';
import { readCertificateDeviceId } from '@fleetpki/x509';
import { auditActor, type Principal } from '../access/api-tokens.js';
import type { ClientCertificateAuthenticator } from '../access/client-certificates.js';
import type { CmpProtectionKey, CmpSharedSecrets } from '../access/cmp-credentials.js';
import type { CmpStore } from './store.js';

/** Who a request's protection proved it comes from. */
export type CmpSender =
  | { readonly kind: 'secret'; readonly reference: string; readonly manufacturerId: string; readonly secret: Buffer; readonly senderKid: Buffer; readonly actor: string }
  | { readonly kind: 'person'; readonly principal: Principal; readonly certificate: X509Certificate; readonly actor: string }
  | { readonly kind: 'device'; readonly certificate: X509Certificate; readonly der: Buffer; readonly serial: Buffer; readonly actor: string };

/** What proving a sender needs: the factories' MAC secrets, the people's client certificates, the device certificates stored. */
export interface CmpCredentials {
  readonly secrets: Pick<CmpSharedSecrets, 'secretFor'>;
  /** The site's CMP protection key (made on first use): its chain names the organisation CA. */
  readonly protectionKey: () => Promise<CmpProtectionKey>;
  readonly clientCertificates: Pick<ClientCertificateAuthenticator, 'authenticate'>;
  readonly store: Pick<CmpStore, 'findDeviceCertificate'>;
  /** The issuing CA's certificate and the root's, DER. */
  readonly chainDer: readonly Buffer[];
  /** Where password-based MACs are computed (PbmThreads: off the main thread); inline when absent. */
  readonly pbm?: PbmComputer;
}

/** The sender, proven by the message's protection; nothing is read or written for a message whose protection fails. */
export async function authenticateCmpSender(message: PkiMessage, deps: CmpCredentials): Promise<CmpSender> {
  const alg = message.header.protectionAlg;
  if (!alg || !message.protection) throw new CmpMessageError('the message is not protected: use a MAC with the factory reference and secret, or sign it with a certificate', 'badMessageCheck');
  if (alg.oid === OID_PASSWORD_BASED_MAC) {
    // The parameters first (algorithms, at most MAX_PBM_ITERATIONS): refused before a database read
    // and a secret derived in the HSM.
    readPbmParameters(alg.parameters);
    const kid = message.header.senderKid;
    const reference = kid && kid.length <= 64 ? kid.toString('utf8') : '';
    const found = reference ? await deps.secrets.secretFor(reference) : undefined;
    // An unknown reference and a wrong secret look the same from outside.
    if (!found) throw new CmpMessageError('the MAC protection does not verify', 'badMessageCheck');
    await verifyMacProtection(message, found.secret, deps.pbm ?? inlinePbm);
    return { kind: 'secret', reference, manufacturerId: found.manufacturerId, secret: found.secret, senderKid: kid!, actor: `factory:${found.manufacturerId} via cmp-reference:${reference}` };
  }
  const certificate = verifySignatureProtection(message);
  const now = Date.now();
  if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) < now) throw new CmpMessageError('the protecting certificate is not valid now', 'badMessageCheck');
  // The organisation CA issues factories' and officers' client certificates; it is the CMP key's issuer too.
  const organisationCa = new X509Certificate((await deps.protectionKey()).chain[1]!);
  const issuingCa = new X509Certificate(deps.chainDer[0]!);
  if (certificate.checkIssued(organisationCa) && certificate.verify(organisationCa.publicKey)) {
    let principal: Principal;
    try {
      principal = await deps.clientCertificates.authenticate({ raw: certificate.raw, serialNumber: certificate.serialNumber });
    } catch {
      throw new CmpMessageError('the protecting certificate is not a live client certificate of this organisation', 'notAuthorized');
    }
    return { kind: 'person', principal, certificate, actor: auditActor(principal) };
  }
  if (certificate.checkIssued(issuingCa) && certificate.verify(issuingCa.publicKey)) {
    const hex = certificate.serialNumber.toLowerCase();
    const serial = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    const stored = await deps.store.findDeviceCertificate(serial);
    if (!stored || !stored.der.equals(certificate.raw)) throw new CmpMessageError('the protecting certificate is not a device certificate this CA issued', 'notAuthorized');
    // A key-agreement key is for ECDH (keyUsage keyAgreement only): what it signs speaks for nobody.
    if (stored.keyRole !== 'digitalSignature') throw new CmpMessageError(`the protecting certificate is a ${stored.keyRole} certificate; kur, rr and certConf are signed with the device's digitalSignature certificate`, 'notAuthorized');
    if (stored.revoked) throw new CmpMessageError(`the protecting certificate ${hex} is revoked`, 'certRevoked');
    return { kind: 'device', certificate, der: certificate.raw, serial, actor: `device:${readCertificateDeviceId(certificate.raw).eui64}` };
  }
  throw new CmpMessageError('the protecting certificate was not issued by this organisation CA or this issuing CA', 'badMessageCheck');
}
