import { existsSync } from 'node:fs';
import * as graphene from 'graphene-pk11';
import { CKR, HsmError, pkcs11Code } from './errors.js';

// One loaded, initialised module per library path per process. C_Initialize and C_Login are per process
// (PKCS#11 v2.40 5.4, 5.6), so several key stores on one module share them.
// graphene-pk11 2.3 does not know PKCS#11 v2.40's CKA_COPYABLE and CKA_DESTROYABLE (4.4): name them once,
// before any template uses them.
graphene.registerAttribute('copyable', 0x171, 'boolean');
graphene.registerAttribute('destroyable', 0x172, 'boolean');

const modules = new Map<string, { module: graphene.Module; users: number; softhsmConf: string | undefined }>();

export function loadModule(modulePath: string, softhsmConf: string | undefined): graphene.Module {
  const cached = modules.get(modulePath);
  if (cached) {
    if (softhsmConf && cached.softhsmConf && softhsmConf !== cached.softhsmConf) {
      throw new HsmError('HSM_OPERATION_FAILED', `PKCS#11 module ${modulePath} is already initialised with ${cached.softhsmConf}; one process serves one site's HSM`);
    }
    cached.users++;
    return cached.module;
  }
  if (!existsSync(modulePath)) {
    throw new HsmError('HSM_MODULE_NOT_FOUND', `PKCS#11 module not found at ${modulePath} (set hsm.<site>.modulePath in the configuration file, or FLEETPKI_PKCS11_MODULE; for SoftHSM2 install the softhsm2 package)`);
  }
  // SoftHSM reads its token directory from SOFTHSM2_CONF once, at C_Initialize.
  if (softhsmConf) process.env.SOFTHSM2_CONF = softhsmConf;
  let module: graphene.Module;
  try {
    module = graphene.Module.load(modulePath, 'fleetpki-hsm');
    // CKF_OS_LOCKING_OK: sessions are used from libuv worker threads concurrently.
    module.initialize({ flags: 2 });
  } catch (err) {
    throw new HsmError('HSM_MODULE_NOT_FOUND', `cannot load PKCS#11 module ${modulePath}: ${(err as Error).message}`, err);
  }
  modules.set(modulePath, { module, users: 1, softhsmConf });
  return module;
}

/**
 * The module as a signing thread (SigningThreads) sees it: loaded and initialised by the key store that
 * started the thread, in this same process. PKCS#11 state is per process, so C_Initialize answers
 * CKR_CRYPTOKI_ALREADY_INITIALIZED here, and the thread must never C_Finalize (that would end every
 * session of the process).
 */
export function attachModule(modulePath: string): graphene.Module {
  const module = graphene.Module.load(modulePath, 'fleetpki-signing-thread');
  try {
    module.initialize({ flags: 2 });
  } catch (err) {
    if (pkcs11Code(err) !== CKR.CRYPTOKI_ALREADY_INITIALIZED && !/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test((err as Error).message)) {
      throw new HsmError('HSM_MODULE_NOT_FOUND', `cannot attach to PKCS#11 module ${modulePath}: ${(err as Error).message}`, err);
    }
  }
  return module;
}

export function releaseModule(modulePath: string): void {
  const cached = modules.get(modulePath);
  if (!cached) return;
  if (--cached.users > 0) return;
  modules.delete(modulePath);
  try {
    cached.module.finalize();
  } catch {
    // finalising a module whose process is exiting anyway; nothing to recover
  }
}

export function findSlot(module: graphene.Module, tokenLabel: string, modulePath: string): graphene.Slot {
  const slots = module.getSlots(true);
  const labels: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const label = slot.getToken().label.trim();
    if (label === tokenLabel) return slot;
    labels.push(label);
  }
  throw new HsmError('HSM_TOKEN_NOT_FOUND', `no token labelled "${tokenLabel}" in ${modulePath} (tokens present: ${labels.length ? labels.join(', ') : 'none'}); run \`pnpm sites up\``);
}

/**
 * Several processes logging in to one SoftHSM token at the same moment fail at random (file locking in
 * its object store), so login retries a few times with jitter. A wrong PIN is final at once.
 */
export async function loginWithRetry(session: graphene.Session, pin: string, tokenLabel: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      session.login(pin, graphene.UserType.USER);
      return;
    } catch (err) {
      const code = pkcs11Code(err);
      if (code === CKR.USER_ALREADY_LOGGED_IN) return;
      if (code === CKR.PIN_INCORRECT || code === CKR.PIN_LEN_RANGE) throw new HsmError('HSM_PIN_INCORRECT', `the PIN for token "${tokenLabel}" was refused`, err);
      if (attempt >= 6) throw new HsmError('HSM_OPERATION_FAILED', `login to token "${tokenLabel}" failed after ${attempt} attempts: ${(err as Error).message}`, err);
      await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 50));
    }
  }
}


/** Every slot with a token present, as an array. */
export function slotsOf(module: graphene.Module): graphene.Slot[] {
  const slots = module.getSlots(true);
  return Array.from({ length: slots.length }, (_, i) => slots.items(i));
}

/** How many key stores in this process share the loaded module (open retries only when alone). */
export function moduleUsers(modulePath: string): number {
  return modules.get(modulePath)?.users ?? 0;
}

/**
 * PKCS#11 return values after which a session is replaced and the operation tried once more. Stale
 * object handles count too: when an application's last session closes or the token logs out, SoftHSM
 * (like other HSMs) forgets the handles it gave out, and the pool's cached key handles go with them; a
 * fresh session looks its keys up again.
 */
const BROKEN_SESSION = new Set<number>([CKR.SESSION_HANDLE_INVALID, CKR.SESSION_CLOSED, CKR.USER_NOT_LOGGED_IN, CKR.DEVICE_REMOVED, CKR.TOKEN_NOT_PRESENT, CKR.OBJECT_HANDLE_INVALID, CKR.KEY_HANDLE_INVALID]);

export function isBrokenSession(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = pkcs11Code(e);
    if (code !== undefined && BROKEN_SESSION.has(code)) return true;
    if (/CKR_(SESSION_HANDLE_INVALID|SESSION_CLOSED|USER_NOT_LOGGED_IN|DEVICE_REMOVED|TOKEN_NOT_PRESENT|OBJECT_HANDLE_INVALID|KEY_HANDLE_INVALID)/.test((e as Error).message ?? '')) return true;
  }
  return false;
}

/** A slot's PKCS#11 slot ID (CK_SLOT_ID, a CK_ULONG: graphene keeps it as a native-endian buffer). */
function slotId(slot: graphene.Slot): bigint {
  const h = slot.handle;
  return h.length >= 8 ? h.readBigUInt64LE(0) : BigInt(h.readUInt32LE(0));
}

/** The slot with this slot ID, holding a token (hsm.<site>.token.slot); the error names the module and the slots there are. */
export function findSlotById(module: graphene.Module, id: number, modulePath: string): graphene.Slot {
  const slots = module.getSlots(true);
  const present: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    if (slotId(slot) === BigInt(id)) return slot;
    present.push(`${slotId(slot)} (${slot.getToken().label.trim()})`);
  }
  throw new HsmError('HSM_TOKEN_NOT_FOUND', `no token in slot ${id} of ${modulePath} (slots with a token: ${present.length ? present.join(', ') : 'none'})`);
}
