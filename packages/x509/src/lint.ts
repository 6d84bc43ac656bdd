import { FleetError } from '@fleetpki/core';
import type { AssembledTbs } from './device-template.js';
import { P256_SPKI_LENGTH, P256_SPKI_PREFIX } from './public-key.js';
import { SERIAL_LENGTH } from './device-template.js';

/** Only this module can mint LintedTbs values: the key is never exported. */
const LINT_KEY: unique symbol = Symbol('lint');

/** DER overhead around a TBS: outer SEQUENCE header, ecdsa-with-SHA256 AlgorithmIdentifier, BIT STRING of the longest P-256 signature (72 bytes). */
export const MAX_SIGNATURE_OVERHEAD = 4 + 12 + 3 + 72;

/**
 * A TBSCertificate that passed the pre-issuance lint, redeemable once (Boulder's Prepare/Issue). The
 * signing path takes only this type, so a TBS that was not linted cannot reach the HSM, and a linted
 * TBS cannot be signed twice.
 */
export class LintedTbs {
  #redeemed = false;

  constructor(
    key: typeof LINT_KEY,
    readonly tbs: AssembledTbs,
  ) {
    if (key !== LINT_KEY) throw new Error('LintedTbs is created by lintDeviceTbs only');
  }

  /** Hands out the TBS for signing exactly once. */
  redeem(): AssembledTbs {
    if (this.#redeemed) throw new FleetError('LINT_TOKEN_REUSED', 'this linted TBS was already signed; lint a new one');
    this.#redeemed = true;
    return this.tbs;
  }
}

export interface LintProblem {
  readonly lint: string;
  readonly message: string;
}

type Lint = (tbs: AssembledTbs) => string | undefined;

/** One rule a line, each naming the rule of the standard or profile it enforces. */
const LINTS: Record<string, Lint> = {
  // PROFILE.md: every profile declares a DER size budget.
  size_budget: (t) => (t.der.length + MAX_SIGNATURE_OVERHEAD > t.profile.derBudget ? `certificate may reach ${t.der.length + MAX_SIGNATURE_OVERHEAD} bytes, over the ${t.profile.id} budget of ${t.profile.derBudget}` : undefined),
  // RFC 5280 4.1.2.2: positive, at most 20 octets; ARCHITECTURE.md: prefix byte + >= 64 random bits.
  serial_shape: (t) => (t.fields.serial.length !== SERIAL_LENGTH || t.fields.serial[0]! < 0x01 || t.fields.serial[0]! > 0x7f ? 'serial must be 9 bytes with a prefix byte in 0x01-0x7f' : undefined),
  serial_entropy: (t) => (t.fields.serial.subarray(1).every((b) => b === 0) ? 'serial has no random part' : undefined),
  // RFC 5280 4.1.2.5
  validity_order: (t) => (t.fields.notBefore.getTime() >= t.notAfter.getTime() ? 'notBefore is not before notAfter' : undefined),
  validity_seconds: (t) => (t.fields.notBefore.getUTCMilliseconds() !== 0 ? 'notBefore must be whole seconds (DER times carry no fractions here)' : undefined),
  // PROFILE.md: id-ecPublicKey + prime256v1, uncompressed point.
  spki_p256: (t) => (t.fields.publicKeySpki.length !== P256_SPKI_LENGTH || !t.fields.publicKeySpki.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX) || t.fields.publicKeySpki[P256_SPKI_PREFIX.length] !== 0x04 ? 'public key is not an uncompressed P-256 SPKI' : undefined),
  // RFC 4108 5: hwSerialNum carries the 8-byte EUI-64.
  eui64_length: (t) => (t.fields.eui64.length !== 8 ? 'hwSerialNum must be the 8-byte EUI-64' : undefined),
  // RFC 5280 4.2.1.2 method 2 gives 8 bytes.
  ski_length: (t) => (t.profile.includeSubjectKeyId && t.subjectKeyId?.length !== 8 ? 'subjectKeyIdentifier must be 8 bytes' : undefined),
};

/** A table of lint rules: each names what is wrong with a TBS, or nothing. */
export type LintRules<T> = Readonly<Record<string, (tbs: T) => string | undefined>>;

/** Every rule of `rules` that `tbs` breaks, by name. */
export function runLints<T>(rules: LintRules<T>, tbs: T): LintProblem[] {
  const problems: LintProblem[] = [];
  for (const [lint, check] of Object.entries(rules)) {
    const message = check(tbs);
    if (message) problems.push({ lint, message });
  }
  return problems;
}

/** Throws LINT_FAILED naming each broken rule, when there is one (`what`: "the certificate", ...). */
export function refuseLintProblems(problems: readonly LintProblem[], what: string): void {
  if (problems.length) {
    throw new FleetError('LINT_FAILED', `pre-issuance lint refused ${what}: ${problems.map((p) => `${p.lint}: ${p.message}`).join('; ')}`, { httpStatus: 500, details: { problems } });
  }
}

export function lintProblems(tbs: AssembledTbs): LintProblem[] {
  return runLints(LINTS, tbs);
}

/** Runs every lint; returns the one-shot token the signer accepts, or throws naming each failed rule. */
export function lintDeviceTbs(tbs: AssembledTbs): LintedTbs {
  refuseLintProblems(lintProblems(tbs), 'the certificate');
  return new LintedTbs(LINT_KEY, tbs);
}
