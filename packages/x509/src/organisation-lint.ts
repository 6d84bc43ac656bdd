import { FleetError } from '@fleetpki/core';
import { SERIAL_LENGTH } from './device-template.js';
import { refuseLintProblems, runLints, type LintProblem } from './lint.js';
import { SERVER_PURPOSES, type OrganisationCertificateRequest } from './organisation-certificate.js';
import { P256_SPKI_LENGTH, P256_SPKI_PREFIX } from './public-key.js';

/** Only this module can mint LintedOrganisationTbs values: the key is never exported. */
const LINT_KEY: unique symbol = Symbol('organisation-lint');

/** An organisation certificate's TBS as buildOrganisationTbs made it, with the request it was made from. */
export interface OrganisationTbs {
  readonly der: Buffer;
  readonly keyId: Buffer;
  readonly request: OrganisationCertificateRequest;
}

/**
 * An organisation certificate's TBS that passed the pre-issuance lint, redeemable once: the organisation
 * CA's signing path takes only this type, as device certificates' takes LintedTbs (Boulder's
 * Prepare/Issue), so a TBS that was not linted cannot reach the HSM and none is signed twice.
 */
export class LintedOrganisationTbs {
  #redeemed = false;

  constructor(
    key: typeof LINT_KEY,
    readonly tbs: OrganisationTbs,
  ) {
    if (key !== LINT_KEY) throw new Error('LintedOrganisationTbs is created by lintOrganisationTbs only');
  }

  /** Hands out the TBS for signing exactly once. */
  redeem(): OrganisationTbs {
    if (this.#redeemed) throw new FleetError('LINT_TOKEN_REUSED', 'this linted TBS was already signed; lint a new one');
    this.#redeemed = true;
    return this.tbs;
  }
}

type Lint = (tbs: OrganisationTbs) => string | undefined;

/** One rule a line, each naming the rule of the standard or profile it enforces (PROFILE.md, organisation certificates). */
const LINTS: Record<string, Lint> = {
  // RFC 5280 4.1.2.2: positive, at most 20 octets; ARCHITECTURE.md: prefix byte + >= 64 random bits.
  serial_shape: (t) => (t.request.serial.length !== SERIAL_LENGTH || t.request.serial[0]! < 0x01 || t.request.serial[0]! > 0x7f ? 'serial must be 9 bytes with a prefix byte in 0x01-0x7f' : undefined),
  serial_entropy: (t) => (t.request.serial.subarray(1).every((b) => b === 0) ? 'serial has no random part' : undefined),
  // RFC 5280 4.1.2.5
  validity_order: (t) => (t.request.notBefore.getTime() >= t.request.notAfter.getTime() ? 'notBefore is not before notAfter' : undefined),
  validity_seconds: (t) => (t.request.notBefore.getUTCMilliseconds() !== 0 || t.request.notAfter.getUTCMilliseconds() !== 0 ? 'validity must be whole seconds (DER times carry no fractions here)' : undefined),
  // PROFILE.md: ECDSA P-256, uncompressed point.
  spki_p256: (t) => (t.request.publicKeySpki.length !== P256_SPKI_LENGTH || !t.request.publicKeySpki.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX) || t.request.publicKeySpki[P256_SPKI_PREFIX.length] !== 0x04 ? 'public key is not an uncompressed P-256 SPKI' : undefined),
  // RFC 5280 4.2.1.2 method 2 gives 8 bytes.
  ski_length: (t) => (t.keyId.length !== 8 ? 'subjectKeyIdentifier must be 8 bytes' : undefined),
  aki_length: (t) => (t.request.issuerKeyId.length === 0 ? 'authorityKeyIdentifier is empty' : undefined),
  // RFC 5280 4.2.1.6: a server names its hosts; no other purpose carries a subjectAltName here.
  san_purpose: (t) => (t.request.names?.length && !SERVER_PURPOSES.includes(t.request.purpose) ? `a ${t.request.purpose} certificate carries no subjectAltName` : undefined),
  // RFC 6125 6.4: a client checks the name it dialled against the SAN; an internal server without one is unreachable by name.
  san_required: (t) => (t.request.purpose === 'internal-server' && !t.request.names?.length ? 'an internal server certificate names its hosts (subjectAltName)' : undefined),
  // RFC 5280 4.2.1.12: one purpose per certificate, except a part that is both server and client of its peers.
  eku_client_too: (t) => (t.request.clientAuthToo && t.request.purpose !== 'internal-server' ? `a ${t.request.purpose} certificate has its purpose's extended key usage only` : undefined),
  // RFC 5280 4.1.2.6: a subject with a common name; none for an internal client (etcd's gateway refuses a
  // client certificate with one, and a common name that named an etcd user would be that user's login).
  // Without one it still has a subject (RFC 5280 4.1.2.6: no subjectAltName to stand in for it): O or OU.
  subject_cn: (t) =>
    t.request.purpose === 'internal-client'
      ? t.request.subject.commonName !== undefined
        ? 'an internal client certificate must have no commonName'
        : !t.request.subject.organization && !t.request.subject.organizationalUnit
          ? 'an internal client certificate names its organisation or unit (no commonName, no subjectAltName)'
          : undefined
      : !t.request.subject.commonName
        ? 'subject has no commonName'
        : undefined,
};

export function lintOrganisationProblems(tbs: OrganisationTbs): LintProblem[] {
  return runLints(LINTS, tbs);
}

/** Runs every lint; returns the one-shot token the organisation CA's signer accepts, or throws naming each failed rule. */
export function lintOrganisationTbs(tbs: OrganisationTbs): LintedOrganisationTbs {
  refuseLintProblems(lintOrganisationProblems(tbs), 'the organisation certificate');
  return new LintedOrganisationTbs(LINT_KEY, tbs);
}
