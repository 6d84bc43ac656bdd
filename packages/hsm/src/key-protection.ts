import type * as graphene from 'graphene-pk11';

/**
 * How every private key fleetpki makes is protected: never readable (CKA_SENSITIVE); extractable only
 * when cloneable, and then (CKA_WRAP_WITH_TRUSTED) only under a key the security officer marked trusted,
 * so holding the user PIN is not enough to wrap it out under a key of one's own choosing.
 */
export function PRIVATE_KEY_PROTECTION(cloneable: boolean): graphene.ITemplate {
  return { sensitive: true, extractable: cloneable, wrapWithTrusted: true };
}

/** The same for device master keys (secret keys used only to derive device keys). */
export function MASTER_KEY_PROTECTION(cloneable: boolean): graphene.ITemplate {
  return { sensitive: true, extractable: cloneable, wrapWithTrusted: true, encrypt: false, decrypt: false, wrap: false, unwrap: false, sign: false, verify: false };
}

