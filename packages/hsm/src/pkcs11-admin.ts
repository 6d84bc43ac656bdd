/**
 * The security officer's side of a token: initialising it and setting its PINs (the custody ceremony's
 * trusted key-encryption key is custody-wrap.ts). Runs in a process of its own (HsmProcess): a process
 * holds one login state per token, and the services' processes are logged in as the user.
 */
import { randomBytes } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { HsmError, pkcs11Code, CKR } from './errors.js';
import { findSlot, loadModule, releaseModule, slotsOf } from './pkcs11-module.js';

const RW = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;

function withModule<T>(modulePath: string, fn: (module: graphene.Module) => T): T {
  const module = loadModule(modulePath, undefined);
  try {
    return fn(module);
  } finally {
    releaseModule(modulePath);
  }
}

/** C_Login as the token's security officer; a wrong PIN is HSM_PIN_INCORRECT. */
export function loginAsSecurityOfficer(session: graphene.Session, soPin: string, tokenLabel: string): void {
  try {
    session.login(soPin, graphene.UserType.SO);
  } catch (err) {
    if (pkcs11Code(err) === CKR.PIN_INCORRECT || pkcs11Code(err) === CKR.PIN_LEN_RANGE) throw new HsmError('HSM_PIN_INCORRECT', `the security officer's PIN for token "${tokenLabel}" was refused`, err);
    throw new HsmError('HSM_OPERATION_FAILED', `security officer login to token "${tokenLabel}" failed: ${(err as Error).message}`, err);
  }
}

/** Runs `fn` in a read-write session logged in as the token's security officer. */
function asSecurityOfficer<T>(modulePath: string, tokenLabel: string, soPin: string, fn: (session: graphene.Session) => T): T {
  return withModule(modulePath, (module) => {
    const session = findSlot(module, tokenLabel, modulePath).open(RW);
    try {
      loginAsSecurityOfficer(session, soPin, tokenLabel);
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

/** Sets a token's user PIN (C_InitPIN) and optionally a new SO PIN (C_SetPIN), as its SO. */
export function rePinToken(modulePath: string, tokenLabel: string, soPin: string, pins: { userPin: string; soPin?: string }): void {
  asSecurityOfficer(modulePath, tokenLabel, soPin, (session) => {
    session.initPin(pins.userPin);
    if (pins.soPin) session.setPin(soPin, pins.soPin);
  });
}

/**
 * A trusted key-encryption key as the security officer made one for custody ceremonies before issue 33:
 * a token object with CKA_MODIFIABLE and CKA_COPYABLE left at their default (true), so any user session
 * could copy it or switch it to unwrap. Reproduces that window, or a planted trusted key, for the probes
 * and tests (test/custody-kek.test.ts); never used by a ceremony.
 */
export function plantLegacyTrustedKek(modulePath: string, tokenLabel: string, soPin: string, label: string): void {
  asSecurityOfficer(modulePath, tokenLabel, soPin, (session) => {
    session.create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: true, private: false, value: randomBytes(32), trusted: true, wrap: true, unwrap: false, encrypt: false, decrypt: false, sensitive: true, extractable: false, label });
  });
}
