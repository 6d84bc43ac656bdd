import { createPublicKey, type KeyObject } from 'node:crypto';
import { FleetError, type KeyRole } from '@fleetpki/core';
import { parsePkcs11Uri, type Signer, type SigningKeyStore } from '@fleetpki/hsm';
import type { CaRecord } from '@fleetpki/store';
import { DeviceTemplate, assembleNativeC509, assembleSignedCertificate, ecdsaDerToRaw, getProfile, nativeC509Tbs, parseCaCertificate, type LintedTbs, type ParsedCaCertificate } from '@fleetpki/x509';

/** An issuing CA ready to sign: its record, its parsed certificate, an HSM signer for its key. */
export interface IssuingCa {
  readonly record: CaRecord;
  readonly certificate: ParsedCaCertificate;
  readonly signer: Signer;
  readonly publicKey: KeyObject;
  template(profileId: string, keyRole: KeyRole): DeviceTemplate;
}

/**
 * Binds a CA record to its key in this site's token and refuses when the key does not match the
 * certificate (Boulder: an issuer whose key and certificate disagree must not start). Keys are looked up
 * by object label in the site's own token: the token in key_uri names where the key was generated, and
 * a standby site holds a clone under the same label.
 */
export async function openIssuingCa(record: CaRecord, keyStore: SigningKeyStore, options: { crlBaseUrl?: string } = {}): Promise<IssuingCa> {
  const certificate = parseCaCertificate(record.certificate);
  const uri = parsePkcs11Uri(record.keyUri);
  const label = uri.object;
  const signer = await keyStore.getSigner({ label, ...(uri.id ? { id: uri.id } : {}) });
  if (!signer.publicKeySpki.equals(certificate.publicKeySpki)) {
    throw new FleetError('CA_KEY_MISMATCH', `the key "${label}" in token "${keyStore.tokenLabel}" does not match the certificate of CA ${record.id}; refusing to sign with it`);
  }
  const templates = new Map<string, DeviceTemplate>();
  return {
    record,
    certificate,
    signer,
    publicKey: createPublicKey({ key: certificate.publicKeySpki, format: 'der', type: 'spki' }),
    template(profileId, keyRole) {
      const key = `${profileId}/${keyRole}`;
      let template = templates.get(key);
      if (!template) {
        template = new DeviceTemplate(getProfile(profileId), { caId: record.id, subjectDer: certificate.subjectDer, keyId: certificate.keyId, ...(options.crlBaseUrl ? { crlBaseUrl: options.crlBaseUrl } : {}) }, keyRole);
        templates.set(key, template);
      }
      return template;
    },
  };
}

/**
 * Signs a linted TBS in the HSM and returns the certificate as stored: DER, or C509 for a natively
 * signed profile (the HSM then signs the CBOR TBS derived from the linted DER TBS). The signer checks
 * the signature before it returns it (SignatureCheck, on its signing thread): a faulty HSM must not
 * produce a certificate that fails to verify (Boulder checks every signature).
 */
export async function signCertificate(ca: IssuingCa, linted: LintedTbs): Promise<Buffer> {
  const tbs = linted.redeem();
  const toBeSigned = tbs.profile.nativeC509 ? nativeC509Tbs(tbs.der) : tbs.der;
  const signature = await ca.signer.sign(toBeSigned);
  // C509 carries ECDSA as r || s (RFC 9053 2.1); the CA keys are P-256.
  return tbs.profile.nativeC509 ? assembleNativeC509(toBeSigned, ecdsaDerToRaw(signature, 'signature', 32)) : assembleSignedCertificate(tbs.der, signature);
}
