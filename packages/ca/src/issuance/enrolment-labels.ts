import { FleetError, type KeyRole } from '@fleetpki/core';

/**
 * What a protocol's label (EST's /.well-known/est/<label>/, CMP's /.well-known/cmp/p/<label>) picks:
 * a certificate profile and a key role. One table for every enrolment protocol, so a label means the
 * same thing to each. Natively signed C509 profiles are absent: EST and CMP deliver X.509.
 */
export interface EnrolmentLabel {
  readonly label: string;
  readonly profileId: string;
  readonly keyRole: KeyRole;
}

export const ENROLMENT_LABELS: readonly EnrolmentLabel[] = [
  { label: 'smart-meter-signing', profileId: 'smart-meter', keyRole: 'digitalSignature' },
  { label: 'smart-meter-kex', profileId: 'smart-meter', keyRole: 'keyAgreement' },
  { label: 'compact-signing', profileId: 'smart-meter-compact', keyRole: 'digitalSignature' },
  { label: 'compact-kex', profileId: 'smart-meter-compact', keyRole: 'keyAgreement' },
];

/** The label used when a client names none (/.well-known/est/simpleenroll). */
export const DEFAULT_ENROLMENT_LABEL = 'smart-meter-signing';

export function enrolmentLabel(label: string | undefined): EnrolmentLabel {
  const name = label ?? DEFAULT_ENROLMENT_LABEL;
  const found = ENROLMENT_LABELS.find((l) => l.label === name);
  if (!found) throw new FleetError('LABEL_UNKNOWN', `unknown enrolment label "${name.slice(0, 40)}"; known: ${ENROLMENT_LABELS.map((l) => l.label).join(', ')}`, { httpStatus: 404 });
  return found;
}
