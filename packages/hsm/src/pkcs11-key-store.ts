import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as graphene from 'graphene-pk11';
import { CKR, HsmError, pkcs11Code } from './errors.js';
import { P256_EC_PARAMS, ecdsaRawToDer, p256SpkiFromPoint, unwrapEcPoint } from './ecdsa.js';
import { DeviceKeyOperations } from './device-keys.js';
import type { DeviceKeyTransport, GenerateKeyOptions, KeyInfo, KeyStore, Signer, WrappedKey } from './key-store.js';
import { SessionPool } from './session-pool.js';

export interface Pkcs11Options {
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly pin: string;
  /** Sessions kept open for concurrent operations (default 4). */
  readonly sessions?: number;
  /** SoftHSM2 only: the configuration file naming the token directory (SOFTHSM2_CONF). */
  readonly softhsmConf?: string;
}

// One loaded, initialised module per library path per process. C_Initialize and C_Login are per process
// (PKCS#11 v2.40 5.4, 5.6), so several key stores on one module share them.
const modules = new Map<string, { module: graphene.Module; users: number; softhsmConf: string | undefined }>();

function loadModule(modulePath: string, softhsmConf: string | undefined): graphene.Module {
  const cached = modules.get(modulePath);
  if (cached) {
    if (softhsmConf && cached.softhsmConf && softhsmConf !== cached.softhsmConf) {
      throw new HsmError('HSM_OPERATION_FAILED', `PKCS#11 module ${modulePath} is already initialised with ${cached.softhsmConf}; one process serves one site's HSM`);
    }
    cached.users++;
    return cached.module;
  }
  if (!existsSync(modulePath)) {
    throw new HsmError('HSM_MODULE_NOT_FOUND', `PKCS#11 module not found at ${modulePath} (set FLEETPKI_PKCS11_MODULE; for SoftHSM2 install the softhsm2 package)`);
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

function releaseModule(modulePath: string): void {
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

function findSlot(module: graphene.Module, tokenLabel: string, modulePath: string): graphene.Slot {
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
async function loginWithRetry(session: graphene.Session, pin: string, tokenLabel: string): Promise<void> {
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

export class Pkcs11KeyStore implements KeyStore {
  readonly tokenLabel: string;
  private closed = false;

  private constructor(
    private readonly modulePath: string,
    readonly slot: graphene.Slot,
    private readonly sessions: graphene.Session[],
    private readonly pool: SessionPool<graphene.Session>,
    tokenLabel: string,
  ) {
    this.tokenLabel = tokenLabel;
  }

  static async open(options: Pkcs11Options): Promise<Pkcs11KeyStore> {
    let module = loadModule(options.modulePath, options.softhsmConf);
    try {
      let slot: graphene.Slot | undefined;
      // SoftHSM reads its token files at C_Initialize; another process writing to the token at that
      // moment makes it show with an empty label. Initialise again (when we are the only user) and retry.
      for (let attempt = 1; !slot; attempt++) {
        try {
          slot = findSlot(module, options.tokenLabel, options.modulePath);
        } catch (err) {
          if (attempt >= 5 || (err as HsmError).code !== 'HSM_TOKEN_NOT_FOUND' || (modules.get(options.modulePath)?.users ?? 0) > 1) throw err;
          releaseModule(options.modulePath);
          await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100));
          module = loadModule(options.modulePath, options.softhsmConf);
        }
      }
      const flags = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;
      const sessions = Array.from({ length: options.sessions ?? 4 }, () => slot.open(flags));
      await loginWithRetry(sessions[0]!, options.pin, options.tokenLabel);
      return new Pkcs11KeyStore(options.modulePath, slot, sessions, new SessionPool(sessions), options.tokenLabel);
    } catch (err) {
      releaseModule(options.modulePath);
      throw err;
    }
  }

  async generateSigningKey(label: string, options: GenerateKeyOptions = {}): Promise<KeyInfo> {
    if (await this.hasKey(label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a key labelled "${label}"`);
    const id = createHash('sha256').update(label).digest().subarray(0, 8);
    await this.pool.use((session) => {
      session.generateKeyPair(
        graphene.KeyGenMechanism.EC,
        { keyType: graphene.KeyType.EC, token: true, private: false, verify: true, paramsEC: P256_EC_PARAMS, label, id },
        {
          keyType: graphene.KeyType.EC,
          token: true,
          private: true,
          sign: true,
          // Never readable in clear; extractable only means "may be wrapped" (PKCS#11 v2.40 4.9).
          sensitive: true,
          extractable: options.extractable ?? false,
          label,
          id,
        },
      );
    });
    return this.describeKey(label);
  }

  async hasKey(label: string): Promise<boolean> {
    return this.pool.use((session) => session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label }).length > 0);
  }

  async describeKey(label: string): Promise<KeyInfo> {
    return this.pool.use((session) => {
      const privateKey = this.findPrivateKey(session, label);
      const attrs = privateKey.getAttribute({ sensitive: null, extractable: null });
      return { label, publicKeySpki: this.readPublicKey(session, label), sensitive: attrs.sensitive === true, extractable: attrs.extractable === true };
    });
  }

  async getSigner(label: string): Promise<Signer> {
    const publicKeySpki = await this.pool.use((session) => {
      this.findPrivateKey(session, label);
      return this.readPublicKey(session, label);
    });
    // Object handles are valid in every session of the application (PKCS#11 v2.40 2.4), so look the key
    // up once per session rather than once per signature.
    const handles = new Map<graphene.Session, graphene.PrivateKey>();
    const pool = this.pool;
    const findPrivateKey = (session: graphene.Session) => this.findPrivateKey(session, label);
    return {
      algorithm: 'ecdsa-p256-sha256',
      publicKeySpki,
      sign(data: Uint8Array): Promise<Buffer> {
        // SoftHSM has no CKM_ECDSA_SHA256: hash here, sign the digest with CKM_ECDSA.
        const digest = createHash('sha256').update(data).digest();
        return pool.use((session) => {
          let key = handles.get(session);
          if (!key) handles.set(session, (key = findPrivateKey(session)));
          return new Promise<Buffer>((resolve, reject) => {
            // The callback form runs C_Sign on a libuv worker thread, so sessions sign in parallel.
            session.createSign('ECDSA', key).once(digest, (err, raw) => {
              if (err) reject(new HsmError('HSM_OPERATION_FAILED', `signing with "${label}" failed: ${err.message}`, err));
              else resolve(ecdsaRawToDer(raw));
            });
          });
        });
      },
    };
  }

  async wrapPrivateKey(label: string, kek: Uint8Array): Promise<WrappedKey> {
    return this.pool.use((session) => {
      const privateKey = this.findPrivateKey(session, label);
      if (privateKey.getAttribute({ extractable: null }).extractable !== true) {
        throw new HsmError('HSM_KEY_NOT_EXTRACTABLE', `key "${label}" in token "${this.tokenLabel}" was generated non-extractable and cannot be cloned`);
      }
      const publicKeySpki = this.readPublicKey(session, label);
      return this.withTransientKek(session, kek, (kekObject) => {
        try {
          return { label, mechanism: 'aes-key-wrap-pad' as const, wrapped: session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, kekObject, privateKey), publicKeySpki };
        } catch (err) {
          if (pkcs11Code(err) === CKR.KEY_UNEXTRACTABLE) throw new HsmError('HSM_KEY_NOT_EXTRACTABLE', `token "${this.tokenLabel}" refuses to wrap "${label}"`, err);
          throw new HsmError('HSM_OPERATION_FAILED', `wrapping "${label}" failed: ${(err as Error).message}`, err);
        }
      });
    });
  }

  async unwrapPrivateKey(wrapped: WrappedKey, kek: Uint8Array): Promise<KeyInfo> {
    if (await this.hasKey(wrapped.label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a key labelled "${wrapped.label}"`);
    const label = wrapped.label;
    const id = createHash('sha256').update(label).digest().subarray(0, 8);
    await this.pool.use((session) =>
      this.withTransientKek(session, kek, (kekObject) => {
        let privateKey: graphene.Key;
        try {
          privateKey = session.unwrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, kekObject, wrapped.wrapped, {
            class: graphene.ObjectClass.PRIVATE_KEY,
            keyType: graphene.KeyType.EC,
            token: true,
            private: true,
            sign: true,
            // A clone is final: it never leaves this token again, not even wrapped.
            sensitive: true,
            extractable: false,
            label,
            id,
          });
        } catch (err) {
          // Wrong KEK or a corrupted blob: RFC 5649's integrity check fails inside the HSM.
          throw new HsmError('HSM_UNWRAP_FAILED', `unwrapping "${label}" into token "${this.tokenLabel}" failed (wrong key-encryption key or damaged blob): ${(err as Error).message}`, err);
        }
        try {
          // The public half travels in clear beside the blob; SPKI of P-256 ends with the 65-byte point.
          const point = wrapped.publicKeySpki.subarray(wrapped.publicKeySpki.length - 65);
          session.create({
            class: graphene.ObjectClass.PUBLIC_KEY,
            keyType: graphene.KeyType.EC,
            token: true,
            private: false,
            verify: true,
            paramsEC: P256_EC_PARAMS,
            pointEC: Buffer.concat([Buffer.from([0x04, point.length]), point]),
            label,
            id,
          });
        } catch (err) {
          privateKey.destroy();
          throw new HsmError('HSM_OPERATION_FAILED', `storing the public key of "${label}" failed: ${(err as Error).message}`, err);
        }
      }),
    );
    return this.describeKey(label);
  }

  async generateMasterKey(label: string): Promise<void> {
    if (await this.hasSecretKey(label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a secret key labelled "${label}"`);
    await this.pool.use((session) => new DeviceKeyOperations(session).generateMasterKey(label));
  }

  async hasSecretKey(label: string): Promise<boolean> {
    return this.pool.use((session) => session.find({ class: graphene.ObjectClass.SECRET_KEY, label }).length > 0);
  }

  async openDeviceKeyTransport(factoryPoint: Buffer, context: Buffer): Promise<DeviceKeyTransport> {
    if (factoryPoint.length !== 65 || factoryPoint[0] !== 0x04) throw new HsmError('HSM_OPERATION_FAILED', 'the factory key must be an uncompressed P-256 point (65 bytes)');
    // Session objects live as long as the session that made them: the transport keeps one session.
    const session = this.slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      const ops = new DeviceKeyOperations(session);
      const { kek, ephemeralPoint } = ops.agreeTransportKey(factoryPoint, context);
      const masters = new Map<string, graphene.SecretKey>();
      return {
        ephemeralPoint,
        async wrapDeviceKeys(items) {
          return items.map(({ masterLabel, data }) => {
            let master = masters.get(masterLabel);
            if (!master) masters.set(masterLabel, (master = ops.findSecretKey(masterLabel)));
            return ops.diversifyAndWrap(master, kek, data);
          });
        },
        async close() {
          try {
            kek.destroy();
          } finally {
            session.close();
          }
        },
      };
    } catch (err) {
      session.close();
      throw err;
    }
  }

  async knownAnswerWrap(mechanism: 'aes-key-wrap' | 'aes-key-wrap-pad', kek: Buffer, keyMaterial: Buffer): Promise<Buffer> {
    return this.pool.use((session) => new DeviceKeyOperations(session).knownAnswerWrap(mechanism, kek, keyMaterial));
  }

  async knownAnswerDiversify(master: Buffer, kek: Buffer, data: Buffer): Promise<{ wrapped: Buffer; kcv: Buffer }> {
    return this.pool.use((session) => new DeviceKeyOperations(session).knownAnswerDiversify(master, kek, data));
  }

  /** Reads CKA_VALUE of a secret key. Exists for tests that prove it is refused (CKA_SENSITIVE). */
  async tryReadSecretValue(label: string): Promise<Buffer> {
    return this.pool.use((session) => {
      try {
        return new DeviceKeyOperations(session).findSecretKey(label).getAttribute({ value: null }).value as Buffer;
      } catch (err) {
        if (pkcs11Code(err) === CKR.ATTRIBUTE_SENSITIVE) throw new HsmError('HSM_OPERATION_FAILED', `CKA_VALUE of "${label}" is sensitive`, err);
        throw err;
      }
    });
  }

  async deviceMac(masterLabel: string, data: Buffer, message: Buffer): Promise<Buffer> {
    return this.pool.use((session) => {
      const ops = new DeviceKeyOperations(session);
      return ops.deviceMac(ops.findSecretKey(masterLabel), data, message);
    });
  }

  async wrapSecretKey(label: string, kek: Uint8Array): Promise<{ wrapped: Buffer; checkValue: Buffer }> {
    return this.pool.use((session) => {
      const ops = new DeviceKeyOperations(session);
      const key = ops.findSecretKey(label);
      const checkValue = ops.masterCheckValue(key);
      return this.withTransientKek(session, kek, (kekObject) => ({ wrapped: session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP, kekObject, key), checkValue }));
    });
  }

  async unwrapSecretKey(label: string, wrapped: Buffer, kek: Uint8Array): Promise<{ checkValue: Buffer }> {
    if (await this.hasSecretKey(label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a secret key labelled "${label}"`);
    return this.pool.use((session) =>
      this.withTransientKek(session, kek, (kekObject) => {
        let key: graphene.SecretKey;
        try {
          key = session
            .unwrapKey(graphene.MechanismEnum.AES_KEY_WRAP, kekObject, wrapped, {
              class: graphene.ObjectClass.SECRET_KEY,
              keyType: graphene.KeyType.AES,
              token: true,
              private: true,
              sensitive: true,
              extractable: false,
              derive: true,
              label,
              id: createHash('sha256').update(label).digest().subarray(0, 8),
            })
            .toType<graphene.SecretKey>();
        } catch (err) {
          throw new HsmError('HSM_UNWRAP_FAILED', `unwrapping "${label}" into token "${this.tokenLabel}" failed (wrong key-encryption key or damaged blob): ${(err as Error).message}`, err);
        }
        return { checkValue: new DeviceKeyOperations(session).masterCheckValue(key) };
      }),
    );
  }

  async masterCheckValue(label: string): Promise<Buffer> {
    return this.pool.use((session) => {
      const ops = new DeviceKeyOperations(session);
      return ops.masterCheckValue(ops.findSecretKey(label));
    });
  }

  /** Runs `fn` with the KEK present as a session object, destroyed afterwards whatever happens. */
  private withTransientKek<T>(session: graphene.Session, kek: Uint8Array, fn: (kek: graphene.SecretKey) => T): T {
    if (kek.length !== 32) throw new HsmError('HSM_OPERATION_FAILED', `a key-encryption key is 32 bytes (AES-256), got ${kek.length}`);
    const kekObject = session
      .create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: false, private: true, value: Buffer.from(kek), wrap: true, unwrap: true, sensitive: true, extractable: false, label: 'fleetpki-transient-kek' })
      .toType<graphene.SecretKey>();
    try {
      return fn(kekObject);
    } finally {
      kekObject.destroy();
    }
  }

  /** Reads the CKA_VALUE of a private key. Exists for tests that prove it is refused (CKA_SENSITIVE). */
  async tryReadPrivateValue(label: string): Promise<Buffer> {
    return this.pool.use((session) => {
      try {
        return this.findPrivateKey(session, label).getAttribute({ value: null }).value as Buffer;
      } catch (err) {
        if (pkcs11Code(err) === CKR.ATTRIBUTE_SENSITIVE) throw new HsmError('HSM_OPERATION_FAILED', `CKA_VALUE of "${label}" is sensitive`, err);
        throw err;
      }
    });
  }

  /** Removes a key pair (test clean-up and aborted ceremonies); returns how many objects went. */
  async destroyKey(label: string): Promise<number> {
    return this.pool.use((session) => {
      let removed = 0;
      for (const objectClass of [graphene.ObjectClass.PRIVATE_KEY, graphene.ObjectClass.PUBLIC_KEY]) {
        removed += session.destroy({ class: objectClass, label });
      }
      return removed;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const session of this.sessions) {
      try {
        session.close();
      } catch {
        // the module may already be gone at process exit
      }
    }
    releaseModule(this.modulePath);
  }

  private findPrivateKey(session: graphene.Session, label: string): graphene.PrivateKey {
    const found = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label });
    if (found.length === 0) throw new HsmError('HSM_KEY_NOT_FOUND', `no private key labelled "${label}" in token "${this.tokenLabel}"`);
    return found.items(0).toType<graphene.PrivateKey>();
  }

  private readPublicKey(session: graphene.Session, label: string): Buffer {
    const found = session.find({ class: graphene.ObjectClass.PUBLIC_KEY, label });
    if (found.length === 0) throw new HsmError('HSM_KEY_NOT_FOUND', `no public key labelled "${label}" in token "${this.tokenLabel}"`);
    const point = found.items(0).getAttribute({ pointEC: null }).pointEC as Buffer;
    return p256SpkiFromPoint(unwrapEcPoint(point));
  }
}
