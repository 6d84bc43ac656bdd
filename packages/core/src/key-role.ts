import { FleetError } from './errors.js';

/** One device certificate per key role: a signing key and a key-agreement key (PROFILE.md, keyUsage). */
export const KEY_ROLES = ['digitalSignature', 'keyAgreement'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export function parseKeyRole(input: string): KeyRole {
  if ((KEY_ROLES as readonly string[]).includes(input)) return input as KeyRole;
  throw new FleetError('KEY_ROLE_UNKNOWN', `unknown key role "${input.slice(0, 40)}"; expected one of ${KEY_ROLES.join(', ')}`, { httpStatus: 400 });
}
