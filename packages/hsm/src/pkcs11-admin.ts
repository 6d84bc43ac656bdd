/**
 * The security officer's side of a token: initialising it, setting its PINs, and putting in place the
 * trusted key-encryption key under which, alone, the CA and master keys may be wrapped (PKCS#11 v2.40
 * 4.9: a key with CKA_WRAP_WITH_TRUSTED can be wrapped only under a key with CKA_TRUSTED, and only the
 * SO can set CKA_TRUSTED). Runs in a process of its own (HsmProcess): a process holds one login state
 * per token, and the services' processes are logged in as the user.
 */
import * as graphene from 'graphene-pk11';
import { HsmError, pkcs11Code, CKR } from './errors.js';
import { findSlot, loadModule, releaseModule, slotsOf } from './pkcs11-module.js';

/** What becomes the trusted KEK: an AES-256 value the custodians' shares rebuild, its label and CKA_ID. */
export interface TrustedKeyMaterial {
  readonly label: string;
  readonly id: Uint8Array;
  readonly value: Uint8Array;
}

const RW = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;

function withModule<T>(modulePath: string, fn: (module: graphene.Module) => T): T {
  const module = loadModule(modulePath, undefined);
  try {
    return fn(module);
  } finally {
    releaseModule(modulePath);
  }
}

/** Runs `fn` in a read-write session logged in as the token's security officer. */
function asSecurityOfficer<T>(modulePath: string, tokenLabel: string, soPin: string, fn: (session: graphene.Session) => T): T {
  return withModule(modulePath, (module) => {
    const session = findSlot(module, tokenLabel, modulePath).open(RW);
    try {
      try {
        session.login(soPin, graphene.UserType.SO);
      } catch (err) {
        if (pkcs11Code(err) === CKR.PIN_INCORRECT || pkcs11Code(err) === CKR.PIN_LEN_RANGE) throw new HsmError('HSM_PIN_INCORRECT', `the security officer's PIN for token "${tokenLabel}" was refused`, err);
        throw new HsmError('HSM_OPERATION_FAILED', `security officer login to token "${tokenLabel}" failed: ${(err as Error).message}`, err);
      }
      try {
        return fn(session);
      } finally {
        session.logout();
      }
    } finally {
      session.close();
    }
  });
}

export function listTokenLabels(modulePath: string): string[] {
  return withModule(modulePath, (module) => slotsOf(module).map((slot) => slot.getToken().label.trim()).filter(Boolean));
}

/**
 * Initialises a token on a free slot through the PKCS#11 API (C_InitToken, then C_InitPIN as the SO),
 * not softhsm2-util, whose PIN arguments every user can read in /proc/<pid>/cmdline.
 */
export function initToken(modulePath: string, options: { label: string; soPin: string; userPin: string }): 'created' | 'present' {
  if (options.label.length > 32) throw new HsmError('HSM_OPERATION_FAILED', `token label "${options.label}" is longer than 32 characters`);
  const state = withModule(modulePath, (module): 'ready' | 'needs-pin' => {
    const slots = slotsOf(module);
    const existing = slots.find((s) => s.getToken().label.trim() === options.label);
    if (existing) return existing.getToken().flags & graphene.TokenFlag.USER_PIN_INITIALIZED ? 'ready' : 'needs-pin';
    const free = slots.find((s) => (s.getToken().flags & graphene.TokenFlag.TOKEN_INITIALIZED) === 0);
    if (!free) throw new HsmError('HSM_TOKEN_NOT_FOUND', `no free slot in ${modulePath} to initialise token "${options.label}"`);
    // graphene's Slot.initToken fails on SoftHSM's empty return value after the token was made; call the binding.
    const lib = (free as unknown as { lib: { C_InitToken(slot: unknown, pin: string, label: string): unknown } }).lib;
    try {
      lib.C_InitToken(free.handle, options.soPin, options.label.padEnd(32, ' '));
    } catch (err) {
      throw new HsmError('HSM_OPERATION_FAILED', `initialising token "${options.label}" failed: ${(err as Error).message}`, err);
    }
    return 'needs-pin';
  });
  if (state === 'ready') return 'present';
  // A token whose user PIN was never set (an interrupted initialisation) gets it now.
  asSecurityOfficer(modulePath, options.label, options.soPin, (session) => session.initPin(options.userPin));
  return 'created';
}

/**
 * The custody ceremony's key-encryption key, made a trusted token object by the SO: public (the SO can
 * create no private object), sensitive and non-extractable (its value exists only as custodian shares),
 * and usable for nothing but wrapping (no unwrap: an unwrap here could re-import a CA key with weaker
 * attributes; no encrypt or decrypt: it is no oracle). The ceremony destroys it once the keys are wrapped.
 */
export function installTrustedWrappingKey(modulePath: string, tokenLabel: string, soPin: string, key: TrustedKeyMaterial): void {
  if (key.value.length !== 32) throw new HsmError('HSM_OPERATION_FAILED', `a key-encryption key is 32 bytes (AES-256), got ${key.value.length}`);
  asSecurityOfficer(modulePath, tokenLabel, soPin, (session) => {
    if (session.find({ label: key.label }).length > 0) throw new HsmError('HSM_KEY_EXISTS', `token "${tokenLabel}" already holds an object labelled "${key.label}"`);
    session.create({
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      token: true,
      private: false,
      value: Buffer.from(key.value),
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
      label: key.label,
      id: Buffer.from(key.id),
    });
  });
}

/** Sets a token's user PIN (C_InitPIN) and optionally a new SO PIN (C_SetPIN), as its SO. */
export function rePinToken(modulePath: string, tokenLabel: string, soPin: string, pins: { userPin: string; soPin?: string }): void {
  asSecurityOfficer(modulePath, tokenLabel, soPin, (session) => {
    session.initPin(pins.userPin);
    if (pins.soPin) session.setPin(soPin, pins.soPin);
  });
}
