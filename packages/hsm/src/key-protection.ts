import type * as graphene from 'graphene-pk11';

/**
 * How every private key fleetpki makes is protected: never readable (CKA_SENSITIVE); extractable only
 * when cloneable, and then (CKA_WRAP_WITH_TRUSTED) only under a key the security officer marked trusted,
 * so holding the user PIN is not enough to wrap it out under a key of one's own choosing. Neither
 * copyable, modifiable nor destroyable (PKCS#11 v2.40 4.4): a PIN holder can make no second object of
 * it, change none of its usage attributes (SoftHSM lets any user session do both to an object that
 * allows them), nor destroy it (a CA key gone is a CA stopped); retiring one is the security officer's.
 *
 * Spread it LAST into a template: SoftHSM 2.6.1 applies an unwrap template attribute by attribute, in
 * order, and once CKA_MODIFIABLE is false it refuses every later one (CKR_ATTRIBUTE_READ_ONLY).
 */
export function PRIVATE_KEY_PROTECTION(cloneable: boolean): graphene.ITemplate {
  return { sensitive: true, extractable: cloneable, wrapWithTrusted: true, destroyable: false, copyable: false, modifiable: false };
}

/** The same for device master keys (secret keys used only to derive device keys); spread it last too. */
export function MASTER_KEY_PROTECTION(cloneable: boolean): graphene.ITemplate {
  return { sensitive: true, extractable: cloneable, wrapWithTrusted: true, encrypt: false, decrypt: false, wrap: false, unwrap: false, sign: false, verify: false, derive: true, destroyable: false, copyable: false, modifiable: false };
}

/**
 * The custody ceremony's key-encryption key as the security officer creates it: a session object (it
 * lives in the ceremony's own PKCS#11 application, and dies with it, PKCS#11 v2.40 2.4 and 4.4: no other
 * process ever sees it), public (the SO can create no private object), trusted (so the CA and master
 * keys, CKA_WRAP_WITH_TRUSTED, may be wrapped under it), able to wrap and nothing else, never readable,
 * neither copyable nor modifiable (so not even the ceremony's own user session can turn it into an
 * unwrapping key). Its value exists only as the custodians' shares.
 */
export const CUSTODY_KEK_TEMPLATE: graphene.ITemplate = {
  token: false,
  private: false,
  trusted: true,
  wrap: true,
  unwrap: false,
  encrypt: false,
  decrypt: false,
  derive: false,
  sign: false,
  verify: false,
  sensitive: true,
  extractable: false,
  copyable: false,
  modifiable: false,
};
