/* eslint-disable max-lines -- the one class behind every KeyStore interface: it owns the PKCS#11 session pool and login that all of them share; splitting it by interface is next (ARCHITECTURE, hsm/) */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { CKR, HsmError, pkcs11Code } from './errors.js';
import { P256_EC_PARAMS, ecdsaRawToDer } from './ecdsa.js';
import { DeviceKeyOperations } from './device-keys.js';
import { keyRef, type DeviceKeyTransport, type GenerateKeyOptions, type KeyInfo, type KeyProtection, type KeyRef, type KeyStore, type Signer, type UnwrapOptions, type WrappedKey } from './key-store.js';
import { MASTER_KEY_PROTECTION, PRIVATE_KEY_PROTECTION } from './key-protection.js';
import { findSlot, findSlotById, isBrokenSession, loadModule, loginWithRetry, moduleUsers, releaseModule } from './pkcs11-module.js';
import { SessionPool } from './session-pool.js';
import { collect, findObjects, findOneKey, protectionOf, readP256PublicKey } from './pkcs11-objects.js';
import { CHECK_EVERY_SIGNATURE, inP256ScalarRange, type SignatureCheck } from './signature-check.js';
import { SigningThreads } from './signing-threads.js';
import { observed, observedSigner, reportRelogin, watchTokenHealth } from './observer.js';

export interface Pkcs11Options {
  readonly modulePath: string;
  readonly tokenLabel: string;
  /** The token's slot by its PKCS#11 slot ID (hsm.<site>.token.slot): it then decides, and the token's own label is used. */
  readonly slot?: number;
  readonly pin: string;
  /** Sessions kept open for concurrent operations (default 4). */
  readonly sessions?: number;
  /** SoftHSM2 only: the configuration file naming the token directory (SOFTHSM2_CONF). */
  readonly softhsmConf?: string;
  /**
   * Signing threads (SigningThreads; default 0: signatures on the libuv pool, C_SignInit on the main
   * thread) and the signature check policy (default: every signature verified).
   */
  readonly signing?: { readonly threads: number; readonly check?: SignatureCheck };
}

export class Pkcs11KeyStore implements KeyStore {
  readonly tokenLabel: string;
  private closed = false;
  /** The token asked every 15 s whether it is there (fleetpki_hsm_token_up); stopped by close(). */
  private readonly healthWatch: NodeJS.Timeout;

  private readonly pool: SessionPool<graphene.Session>;

  private constructor(
    private readonly modulePath: string,
    readonly slot: graphene.Slot,
    private readonly sessions: graphene.Session[],
    tokenLabel: string,
    private readonly pin: string,
    private readonly check: SignatureCheck,
    private threads: SigningThreads | undefined,
  ) {
    this.tokenLabel = tokenLabel;
    this.pool = new SessionPool(sessions, { isBroken: isBrokenSession, replace: (broken) => this.replaceSession(broken) });
    this.healthWatch = watchTokenHealth(tokenLabel, () => {
      slot.getToken();
    });
  }

  /**
   * A session closed underneath us, a token logged out, a device reset: close what is left of the
   * session, open a new one and log in again (CKR_USER_ALREADY_LOGGED_IN is fine), in its place.
   */
  private async replaceSession(broken: graphene.Session): Promise<graphene.Session> {
    try {
      broken.close();
    } catch {
      // already gone: that is why it is being replaced
    }
    const fresh = this.slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    await loginWithRetry(fresh, this.pin, this.tokenLabel);
    reportRelogin();
    const at = this.sessions.indexOf(broken);
    if (at >= 0) this.sessions[at] = fresh;
    else this.sessions.push(fresh);
    return fresh;
  }

  /** For fault-injection tests (Pkcs11Probes): the sessions the pool lends out. */
  sessionsForFaultInjection(): readonly graphene.Session[] {
    return this.sessions;
  }

  static async open(options: Pkcs11Options): Promise<Pkcs11KeyStore> {
    let module = loadModule(options.modulePath, options.softhsmConf);
    try {
      let slot: graphene.Slot | undefined;
      // SoftHSM reads its token files at C_Initialize; another process writing to the token at that
      // moment makes it show with an empty label, or C_GetTokenInfo fail with CKR_GENERAL_ERROR (seen in
      // a CI run: a batch worker started beside the issuer-api). Initialise again (when we are the only
      // user) and retry.
      for (let attempt = 1; !slot; attempt++) {
        try {
          slot = options.slot === undefined ? findSlot(module, options.tokenLabel, options.modulePath) : findSlotById(module, options.slot, options.modulePath);
        } catch (err) {
          const unreadable = (err as HsmError).code === 'HSM_TOKEN_NOT_FOUND' || pkcs11Code(err) === CKR.GENERAL_ERROR;
          if (attempt >= 5 || !unreadable || moduleUsers(options.modulePath) > 1) throw err;
          releaseModule(options.modulePath);
          await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100));
          module = loadModule(options.modulePath, options.softhsmConf);
        }
      }
      // Chosen by slot: the token is whatever the slot holds, named by its own label from here on.
      const tokenLabel = options.slot === undefined ? options.tokenLabel : slot.getToken().label.trim();
      const flags = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;
      const sessions = Array.from({ length: options.sessions ?? 4 }, () => slot.open(flags));
      await loginWithRetry(sessions[0]!, options.pin, tokenLabel);
      const check = options.signing?.check ?? CHECK_EVERY_SIGNATURE;
      const threads = options.signing?.threads ? await SigningThreads.start({ modulePath: options.modulePath, tokenLabel, pin: options.pin, check }, options.signing.threads) : undefined;
      return new Pkcs11KeyStore(options.modulePath, slot, sessions, tokenLabel, options.pin, check, threads);
    } catch (err) {
      releaseModule(options.modulePath);
      throw err;
    }
  }

  async generateSigningKey(label: string, options: GenerateKeyOptions = {}): Promise<KeyInfo> {
    if (await this.hasKey(label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a key labelled "${label}"`);
    // A fresh CKA_ID per key: the label names a key, the id tells two generations apart (RFC 7512 id=).
    const id = randomBytes(8);
    await this.pool.use((session) => {
      session.generateKeyPair(
        graphene.KeyGenMechanism.EC,
        { keyType: graphene.KeyType.EC, token: true, private: false, verify: true, paramsEC: P256_EC_PARAMS, label, id },
        { keyType: graphene.KeyType.EC, token: true, private: true, sign: true, label, id, ...PRIVATE_KEY_PROTECTION(options.cloneable === true) }, // protection last (key-protection.ts)
      );
    });
    return this.describeKey({ label, id });
  }

  async hasKey(ref: KeyRef | string): Promise<boolean> {
    return this.pool.use((session) => findObjects(session, graphene.ObjectClass.PRIVATE_KEY, keyRef(ref)).length > 0);
  }

  async describeKey(ref: KeyRef | string): Promise<KeyInfo> {
    return this.pool.use((session) => {
      const privateKey = this.findKey(session, graphene.ObjectClass.PRIVATE_KEY, keyRef(ref));
      const p = protectionOf(privateKey, 'private');
      return { label: p.label, id: p.id, publicKeySpki: this.readPublicKey(session, { label: p.label, id: p.id }), sensitive: p.sensitive, extractable: p.extractable, wrapWithTrusted: p.wrapWithTrusted, alwaysSensitive: p.alwaysSensitive, neverExtractable: p.neverExtractable };
    });
  }

  async getSigner(ref: KeyRef | string): Promise<Signer> {
    const key = keyRef(ref);
    const publicKeySpki = await this.pool.use((session) => {
      this.findKey(session, graphene.ObjectClass.PRIVATE_KEY, key);
      return this.readPublicKey(session, key);
    });
    if (this.threads) return observedSigner(this.threads.signer(key, publicKeySpki), this.tokenLabel, key.label);
    // Object handles are valid in every session of the application (PKCS#11 v2.40 2.4), so look the key
    // up once per session rather than once per signature.
    const handles = new Map<graphene.Session, graphene.PrivateKey>();
    const pool = this.pool;
    const findPrivateKey = (session: graphene.Session) => this.findKey(session, graphene.ObjectClass.PRIVATE_KEY, key).toType<graphene.PrivateKey>();
    const publicKey = createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' });
    const every = this.check.every;
    let signed = 0;
    return observedSigner({
      algorithm: 'ecdsa-p256-sha256',
      publicKeySpki,
      async sign(data: Uint8Array): Promise<Buffer> {
        // SoftHSM has no CKM_ECDSA_SHA256: hash here, sign the digest with CKM_ECDSA.
        const digest = createHash('sha256').update(data).digest();
        const raw = await pool.use((session) => {
          let privateKey = handles.get(session);
          if (!privateKey) handles.set(session, (privateKey = findPrivateKey(session)));
          return new Promise<Buffer>((resolve, reject) => {
            // The callback form runs C_Sign on a libuv worker thread, so sessions sign in parallel.
            session.createSign('ECDSA', privateKey).once(digest, (err, raw) => {
              if (err) reject(new HsmError('HSM_OPERATION_FAILED', `signing with "${key.label}" failed: ${err.message}`, err));
              else resolve(raw);
            });
          });
        });
        if (!inP256ScalarRange(raw)) throw new HsmError('HSM_SIGNATURE_INVALID', `the HSM returned r or s out of range signing with "${key.label}"`);
        const der = ecdsaRawToDer(raw);
        if (signed++ % every === 0 && !verify('sha256', data, publicKey, der)) throw new HsmError('HSM_SIGNATURE_INVALID', `the HSM's signature with "${key.label}" does not verify with its public key`);
        return der;
      },
    }, this.tokenLabel, key.label);
  }


  async unwrapPrivateKey(wrapped: WrappedKey, kek: Uint8Array, options: UnwrapOptions = {}): Promise<KeyInfo> {
    if (await this.hasKey(wrapped.label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a key labelled "${wrapped.label}"`);
    const { label, id } = wrapped;
    await this.pool.use((session) =>
      this.withUnwrappingKek(session, kek, (kekObject) => {
        let privateKey: graphene.Key;
        try {
          privateKey = session.unwrapKey(graphene.MechanismEnum.AES_KEY_WRAP_PAD, kekObject, wrapped.wrapped, {
            class: graphene.ObjectClass.PRIVATE_KEY,
            keyType: graphene.KeyType.EC,
            token: true,
            private: true,
            sign: true,
            label,
            id,
            // A clone is final: it never leaves this token again, not even wrapped; a site rebuilt from
            // custody keeps its keys cloneable as generated keys are. Last (key-protection.ts).
            ...PRIVATE_KEY_PROTECTION(options.cloneable === true),
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
    return this.describeKey({ label, id });
  }

  async generateMasterKey(label: string): Promise<{ id: Buffer }> {
    if (await this.hasSecretKey(label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a secret key labelled "${label}"`);
    const id = randomBytes(8);
    await this.pool.use((session) => new DeviceKeyOperations(session).generateMasterKey(label, id));
    return { id };
  }

  async hasSecretKey(ref: KeyRef | string): Promise<boolean> {
    return this.pool.use((session) => findObjects(session, graphene.ObjectClass.SECRET_KEY, keyRef(ref)).length > 0);
  }

  async openDeviceKeyTransport(factoryPoint: Buffer, context: Buffer): Promise<DeviceKeyTransport> {
    if (factoryPoint.length !== 65 || factoryPoint[0] !== 0x04) throw new HsmError('HSM_OPERATION_FAILED', 'the factory key must be an uncompressed P-256 point (65 bytes)');
    // Session objects live as long as the session that made them: the transport keeps one session.
    const session = this.slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      const ops = new DeviceKeyOperations(session);
      const { kek, ephemeralPoint } = ops.agreeTransportKey(factoryPoint, context);
      const masters = new Map<string, graphene.SecretKey>();
      const findMaster = (label: string) => this.findKey(session, graphene.ObjectClass.SECRET_KEY, { label }).toType<graphene.SecretKey>();
      return {
        ephemeralPoint,
        // One observed operation per call (a chunk's device keys), under the key label 'device-keys'.
        wrapDeviceKeys: (items) =>
          observed(this.tokenLabel, 'device-keys', 'wrap', async () =>
            items.map(({ masterLabel, data }) => {
              let master = masters.get(masterLabel);
              if (!master) masters.set(masterLabel, (master = findMaster(masterLabel)));
              return ops.diversifyAndWrap(master, kek, data);
            }),
          ),
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
        return this.findKey(session, graphene.ObjectClass.SECRET_KEY, { label }).getAttribute({ value: null }).value as Buffer;
      } catch (err) {
        if (pkcs11Code(err) === CKR.ATTRIBUTE_SENSITIVE) throw new HsmError('HSM_OPERATION_FAILED', `CKA_VALUE of "${label}" is sensitive`, err);
        throw err;
      }
    });
  }

  async deviceMac(masterLabel: string, data: Buffer, message: Buffer): Promise<Buffer> {
    return this.pool.use((session) => new DeviceKeyOperations(session).deviceMac(this.findKey(session, graphene.ObjectClass.SECRET_KEY, { label: masterLabel }).toType<graphene.SecretKey>(), data, message));
  }


  async unwrapSecretKey(ref: KeyRef, wrapped: Buffer, kek: Uint8Array, options: UnwrapOptions = {}): Promise<{ checkValue: Buffer }> {
    if (await this.hasSecretKey(ref.label)) throw new HsmError('HSM_KEY_EXISTS', `token "${this.tokenLabel}" already holds a secret key labelled "${ref.label}"`);
    return this.pool.use((session) =>
      this.withUnwrappingKek(session, kek, (kekObject) => {
        let key: graphene.SecretKey;
        try {
          key = session
            .unwrapKey(graphene.MechanismEnum.AES_KEY_WRAP, kekObject, wrapped, {
              class: graphene.ObjectClass.SECRET_KEY,
              keyType: graphene.KeyType.AES,
              token: true,
              private: true,
              label: ref.label,
              id: ref.id ?? createHash('sha256').update(ref.label).digest().subarray(0, 8),
              ...MASTER_KEY_PROTECTION(options.cloneable === true),
            })
            .toType<graphene.SecretKey>();
        } catch (err) {
          throw new HsmError('HSM_UNWRAP_FAILED', `unwrapping "${ref.label}" into token "${this.tokenLabel}" failed (wrong key-encryption key or damaged blob): ${(err as Error).message}`, err);
        }
        return { checkValue: new DeviceKeyOperations(session).masterCheckValue(key) };
      }),
    );
  }

  async masterCheckValue(ref: KeyRef | string): Promise<Buffer> {
    return this.pool.use((session) => new DeviceKeyOperations(session).masterCheckValue(this.findKey(session, graphene.ObjectClass.SECRET_KEY, keyRef(ref)).toType<graphene.SecretKey>()));
  }


  async listTrustedKeys(): Promise<{ label: string; id: Buffer; class: 'secret' | 'public' }[]> {
    return this.pool.use((session) =>
      (['secret', 'public'] as const).flatMap((keyClass) =>
        collect(session.find({ class: keyClass === 'secret' ? graphene.ObjectClass.SECRET_KEY : graphene.ObjectClass.PUBLIC_KEY, token: true, trusted: true })).map((o) => {
          const a = o.getAttribute({ label: null, id: null });
          return { label: String(a.label ?? ''), id: (a.id as Buffer | undefined) ?? Buffer.alloc(0), class: keyClass };
        }),
      ),
    );
  }

  async destroyTrustedKey(label: string): Promise<number> {
    return this.pool.use((session) => {
      let removed = 0;
      for (const objectClass of [graphene.ObjectClass.SECRET_KEY, graphene.ObjectClass.PUBLIC_KEY]) removed += session.destroy({ class: objectClass, token: true, trusted: true, label });
      return removed;
    });
  }

  async listKeyProtection(): Promise<KeyProtection[]> {
    return this.pool.use((session) => [
      ...collect(session.find({ class: graphene.ObjectClass.PRIVATE_KEY })).map((o) => protectionOf(o.toType<graphene.Key>(), 'private')),
      ...collect(session.find({ class: graphene.ObjectClass.SECRET_KEY })).map((o) => protectionOf(o.toType<graphene.Key>(), 'secret')),
    ]);
  }

  async restrictToToken(ref: KeyRef | string, keyClass: 'private' | 'secret'): Promise<void> {
    await this.pool.use((session) => {
      this.findKey(session, keyClass === 'private' ? graphene.ObjectClass.PRIVATE_KEY : graphene.ObjectClass.SECRET_KEY, keyRef(ref)).setAttribute({ extractable: false });
    });
  }


  /** Runs `fn` with `kek` present as a session object that can only unwrap, destroyed afterwards whatever happens. */
  private withUnwrappingKek<T>(session: graphene.Session, kek: Uint8Array, fn: (kek: graphene.SecretKey) => T): T {
    if (kek.length !== 32) throw new HsmError('HSM_OPERATION_FAILED', `a key-encryption key is 32 bytes (AES-256), got ${kek.length}`);
    const kekObject = session
      .create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: false, private: true, value: Buffer.from(kek), wrap: false, unwrap: true, encrypt: false, decrypt: false, sensitive: true, extractable: false, label: 'fleetpki-transient-kek' })
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
        return this.findKey(session, graphene.ObjectClass.PRIVATE_KEY, { label }).getAttribute({ value: null }).value as Buffer;
      } catch (err) {
        if (pkcs11Code(err) === CKR.ATTRIBUTE_SENSITIVE) throw new HsmError('HSM_OPERATION_FAILED', `CKA_VALUE of "${label}" is sensitive`, err);
        throw err;
      }
    });
  }

  /**
   * Removes a key pair; returns how many objects went. Keys fleetpki generates are not destroyable
   * (key-protection.ts: a CA key gone is a CA stopped), so this succeeds only for keys made without that
   * protection (probes, keys of older versions) and is refused, with nothing removed, for the others.
   */
  async destroyKey(label: string): Promise<number> {
    return this.pool.use((session) => {
      let removed = 0;
      // The private key first: if it is refused, its public half stays beside it.
      for (const objectClass of [graphene.ObjectClass.PRIVATE_KEY, graphene.ObjectClass.PUBLIC_KEY]) {
        try {
          removed += session.destroy({ class: objectClass, label });
        } catch (err) {
          if (pkcs11Code(err) === CKR.ACTION_PROHIBITED) {
            throw new HsmError('HSM_KEY_NOT_DESTROYABLE', `key "${label}" on token "${this.tokenLabel}" is not destroyable (CKA_DESTROYABLE false): no PIN holder can remove it`, err);
          }
          throw err;
        }
      }
      return removed;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.healthWatch);
    // The threads' sessions first: finalising the module under them would end them mid-signature.
    await this.threads?.close();
    this.threads = undefined;
    for (const session of this.sessions) {
      try {
        session.close();
      } catch {
        // the module may already be gone at process exit
      }
    }
    releaseModule(this.modulePath);
  }

  private findKey(session: graphene.Session, objectClass: graphene.ObjectClass, ref: KeyRef): graphene.Key {
    return findOneKey(session, objectClass, ref, this.tokenLabel);
  }

  private readPublicKey(session: graphene.Session, ref: KeyRef): Buffer {
    return readP256PublicKey(session, ref, this.tokenLabel);
  }

}


