import { FleetError } from '@fleetpki/core';

/** Typed HSM failures, each naming what to check (module path, token, PIN source, key label). */
export type HsmErrorCode =
  | 'HSM_MODULE_NOT_FOUND'
  | 'HSM_TOKEN_NOT_FOUND'
  | 'HSM_PIN_MISSING'
  | 'HSM_PIN_INCORRECT'
  | 'HSM_KEY_NOT_FOUND'
  | 'HSM_KEY_EXISTS'
  | 'HSM_KEY_NOT_DESTROYABLE'
  | 'HSM_KEY_AMBIGUOUS'
  | 'HSM_URI_INVALID'
  | 'HSM_KEY_NOT_EXTRACTABLE'
  | 'HSM_UNWRAP_FAILED'
  | 'HSM_SIGNATURE_INVALID'
  | 'HSM_TRUSTED_KEY_PRESENT'
  | 'HSM_OPERATION_FAILED';

export class HsmError extends FleetError {
  constructor(code: HsmErrorCode, message: string, cause?: unknown) {
    super(code, message, { httpStatus: 503, cause });
    this.name = 'HsmError';
  }
}

/** PKCS#11 return value, when the error came from the module (pkcs11js sets `code`). */
export function pkcs11Code(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** PKCS#11 v2.40 return values we branch on. */
export const CKR = {
  GENERAL_ERROR: 0x05,
  // v2.40 (CKA_COPYABLE/CKA_MODIFIABLE off); graphene-pk11 names it CKR_VENDOR_DEFINED:27.
  ACTION_PROHIBITED: 0x1b,
  PIN_INCORRECT: 0xa0,
  PIN_LEN_RANGE: 0xa2,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_ANOTHER_ALREADY_LOGGED_IN: 0x104,
  ATTRIBUTE_SENSITIVE: 0x11,
  KEY_UNEXTRACTABLE: 0x6a,
  KEY_NOT_WRAPPABLE: 0x69,
  ATTRIBUTE_READ_ONLY: 0x10,
  SESSION_HANDLE_INVALID: 0xb3,
  SESSION_CLOSED: 0xb0,
  USER_NOT_LOGGED_IN: 0x101,
  DEVICE_REMOVED: 0x32,
  TOKEN_NOT_PRESENT: 0xe0,
  OBJECT_HANDLE_INVALID: 0x82,
  KEY_HANDLE_INVALID: 0x60,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;
