/**
 * What someone holding only a service's user PIN would try, through the same PKCS#11 calls:
 * wrapping a CA or master key under a key of their own choosing, marking their own key trusted,
 * switching a key's protection back. Tests prove each is refused; `fleetpki hsm check` runs the wrap
 * probe against every key it reports, so the report shows what the token does, not only what its
 * attributes say. Each probe uses a session of its own and leaves nothing behind in the token.
 */
import { randomBytes } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { P256_EC_PARAMS } from './ecdsa.js';
import { CKR, pkcs11Code } from './errors.js';
import type { KeyRef } from './key-store.js';
import { collect } from './pkcs11-objects.js';
import type { Pkcs11KeyStore } from './pkcs11-key-store.js';

export type ProbeOutcome = { readonly refused: true; readonly reason: string } | { readonly refused: false };

/** What the trusted-key attack (Pkcs11Probes.stealThroughTrustedKeys) got: the keys' values in clear, by label. */
export interface TrustedKeyTheft {
  /** Trusted token objects the user PIN could see (labels). */
  readonly trustedSeen: readonly string[];
  /** C_CopyObject of a trusted key that the token allowed. */
  readonly copies: number;
  /** C_SetAttributeValue(CKA_UNWRAP) on a trusted key that the token allowed. */
  readonly modified: number;
  /** Target keys read in clear, by label: the private scalar or the secret key's value. */
  readonly extracted: readonly { readonly label: string; readonly value: Buffer }[];
}

/** A wrap that went through: the attacker's own key (its value known to them) and the blob. */
export type WrapProbeOutcome = { readonly refused: true; readonly reason: string } | { readonly refused: false; readonly attackerKey: Buffer; readonly wrapped: Buffer };

function reasonOf(err: unknown): string {
  if (pkcs11Code(err) === CKR.ACTION_PROHIBITED || /CKR_VENDOR_DEFINED:27\b/.test((err as Error).message)) return 'CKR_ACTION_PROHIBITED';
  return /CKR_[A-Z_]+/.exec((err as Error).message)?.[0] ?? (err as Error).message;
}

export class Pkcs11Probes {
  constructor(private readonly store: Pkcs11KeyStore) {}

  private withSession<T>(fn: (session: graphene.Session) => T): T {
    // Login state is per application: a new session of this process is logged in as the store's user.
    const session = this.store.slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      return fn(session);
    } finally {
      session.close();
    }
  }

  private find(session: graphene.Session, ref: KeyRef, keyClass: 'private' | 'secret'): graphene.Key {
    const found = session.find({ class: keyClass === 'private' ? graphene.ObjectClass.PRIVATE_KEY : graphene.ObjectClass.SECRET_KEY, label: ref.label, ...(ref.id ? { id: ref.id } : {}) });
    if (found.length !== 1) throw new Error(`probe: ${found.length} ${keyClass} keys labelled "${ref.label}"`);
    return found.items(0).toType<graphene.Key>();
  }

  /**
   * The attack of issue 15: an AES-256 session key of the caller's choosing (its value known), and the
   * HSM asked to wrap the target under it (CKM_AES_KEY_WRAP_PAD for private keys, CKM_AES_KEY_WRAP for
   * secret keys, as the custody ceremony would). Refused for every key fleetpki makes.
   */
  wrapUnderOwnKey(ref: KeyRef, keyClass: 'private' | 'secret'): WrapProbeOutcome {
    return this.withSession((session) => {
      const attackerKey = randomBytes(32);
      const own = session.create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: false, private: true, value: attackerKey, wrap: true, unwrap: true, sensitive: false, extractable: true }).toType<graphene.SecretKey>();
      try {
        const target = this.find(session, ref, keyClass);
        const wrapped = session.wrapKey(keyClass === 'private' ? graphene.MechanismEnum.AES_KEY_WRAP_PAD : graphene.MechanismEnum.AES_KEY_WRAP, own, target);
        return { refused: false, attackerKey, wrapped };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      } finally {
        own.destroy();
      }
    });
  }

  /**
   * C_CopyObject of a key, with a template that asks for nothing new (PKCS#11 v2.40 4.4: a copy of a key
   * that is not CKA_COPYABLE=false becomes an object the copier owns). A copy that went through is destroyed.
   */
  copyKey(ref: KeyRef, keyClass: 'private' | 'secret' | 'trusted'): ProbeOutcome {
    return this.withSession((session) => {
      try {
        const target = keyClass === 'trusted' ? this.findTrusted(session, ref) : this.find(session, ref, keyClass);
        session.copy(target, { token: false }).destroy();
        return { refused: false };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      }
    });
  }

  /**
   * C_SetAttributeValue of a usage attribute on a key (CKA_UNWRAP on a key-encryption key, CKA_DERIVE on
   * a signing key, CKA_ENCRYPT on a master key): refused for a key made with CKA_MODIFIABLE=false. The
   * probe writes the value the key already has, so a key that allows it is left as it was.
   */
  modifyKey(ref: KeyRef, keyClass: 'private' | 'secret' | 'trusted'): ProbeOutcome {
    return this.withSession((session) => {
      try {
        const target = keyClass === 'trusted' ? this.findTrusted(session, ref) : this.find(session, ref, keyClass);
        const attribute = keyClass === 'private' ? 'derive' : keyClass === 'trusted' ? 'unwrap' : 'encrypt';
        const current = target.getAttribute({ [attribute]: null })[attribute] === true;
        target.setAttribute({ [attribute]: current });
        return { refused: false };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      }
    });
  }

  /**
   * A device key derived from a master key as the services derive them (CKM_AES_CBC_ENCRYPT_DATA, zero
   * IV), but with a template of the caller's choosing: not sensitive, extractable, its value read.
   * SoftHSM 2.6.1 has no CKA_DERIVE_TEMPLATE to stop it (README "Key protection" says so).
   */
  deriveInClear(ref: KeyRef, data: Buffer): { refused: true; reason: string } | { refused: false; value: Buffer } {
    return this.withSession((session) => {
      try {
        const derived = session.deriveKey({ name: 'AES_CBC_ENCRYPT_DATA', params: new graphene.AesCbcEncryptDataParams(Buffer.alloc(16), data) }, this.find(session, ref, 'secret'), {
          class: graphene.ObjectClass.SECRET_KEY,
          keyType: graphene.KeyType.AES,
          valueLen: data.length,
          token: false,
          sensitive: false,
          extractable: true,
        });
        try {
          return { refused: false, value: derived.getAttribute({ value: null }).value as Buffer };
        } finally {
          derived.destroy();
        }
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      }
    });
  }

  /** C_GetAttributeValue(CKA_VALUE) of a key: refused for a sensitive key. */
  readValue(ref: KeyRef, keyClass: 'private' | 'secret'): ProbeOutcome {
    return this.withSession((session) => {
      try {
        this.find(session, ref, keyClass).getAttribute({ value: null });
        return { refused: false };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      }
    });
  }

  private findTrusted(session: graphene.Session, ref: KeyRef): graphene.SessionObject {
    const found = collect(session.find({ class: graphene.ObjectClass.SECRET_KEY, trusted: true, label: ref.label, ...(ref.id ? { id: ref.id } : {}) }));
    if (found.length !== 1) throw new Error(`probe: ${found.length} trusted keys labelled "${ref.label}"`);
    return found[0]!;
  }

  /**
   * The attack of issue 33 §1, as a holder of the user PIN would run it while a custody ceremony's
   * trusted key-encryption key is on the token: every trusted secret key the session can see is copied
   * with CKA_UNWRAP on, or switched to unwrap in place; the targets (wrappable only under a trusted key)
   * are wrapped under it and unwrapped again as session objects that are neither sensitive nor
   * non-extractable, and their values read. Whatever it made is destroyed before it returns.
   */
  stealThroughTrustedKeys(targets: readonly { ref: KeyRef; keyClass: 'private' | 'secret' }[]): TrustedKeyTheft {
    return this.withSession((session) => {
      const trusted = collect(session.find({ class: graphene.ObjectClass.SECRET_KEY, trusted: true })).map((o) => o.toType<graphene.SecretKey>());
      const trustedSeen = trusted.map((k) => String(k.getAttribute({ label: null }).label ?? ''));
      let copies = 0;
      let modified = 0;
      const extracted: { label: string; value: Buffer }[] = [];
      const made: graphene.SessionObject[] = [];
      try {
        for (const kek of trusted) {
          let unwrapper: graphene.SecretKey | undefined;
          try {
            unwrapper = session.copy(kek, { token: false, unwrap: true }).toType<graphene.SecretKey>();
            made.push(unwrapper);
            copies++;
          } catch {
            try {
              kek.setAttribute({ unwrap: true });
              unwrapper = kek;
              modified++;
            } catch {
              // neither: this key cannot be turned into an unwrapping key
            }
          }
          if (!unwrapper) continue;
          for (const { ref, keyClass } of targets) {
            if (extracted.some((e) => e.label === ref.label)) continue;
            try {
              const target = this.find(session, ref, keyClass);
              const mechanism = keyClass === 'private' ? graphene.MechanismEnum.AES_KEY_WRAP_PAD : graphene.MechanismEnum.AES_KEY_WRAP;
              const blob = session.wrapKey(mechanism, kek, target);
              const clear = session.unwrapKey(mechanism, unwrapper, blob, {
                class: keyClass === 'private' ? graphene.ObjectClass.PRIVATE_KEY : graphene.ObjectClass.SECRET_KEY,
                keyType: keyClass === 'private' ? graphene.KeyType.EC : graphene.KeyType.AES,
                token: false,
                sensitive: false,
                extractable: true,
              });
              made.push(clear);
              extracted.push({ label: ref.label, value: clear.getAttribute({ value: null }).value as Buffer });
            } catch {
              // refused for this target: try the next
            }
          }
        }
      } finally {
        for (const object of made) {
          try {
            object.destroy();
          } catch {
            // gone with its session
          }
        }
      }
      return { trustedSeen, copies, modified, extracted };
    });
  }

  /** Creating a key with CKA_TRUSTED as the user (only the security officer may). */
  createTrustedKey(): ProbeOutcome {
    return this.withSession((session) => {
      try {
        session.create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: false, value: randomBytes(32), wrap: true, trusted: true }).destroy();
        return { refused: false };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      }
    });
  }

  /** Marking a key of one's own trusted afterwards (C_SetAttributeValue). */
  markOwnKeyTrusted(): ProbeOutcome {
    return this.withSession((session) => {
      const own = session.create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: false, value: randomBytes(32), wrap: true }).toType<graphene.SecretKey>();
      try {
        own.setAttribute({ trusted: true });
        return { refused: false };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      } finally {
        own.destroy();
      }
    });
  }

  /** Switching a key's protection back (CKA_WRAP_WITH_TRUSTED off, CKA_EXTRACTABLE on). */
  weakenKey(ref: KeyRef, keyClass: 'private' | 'secret', change: { wrapWithTrusted: false } | { extractable: true }): ProbeOutcome {
    return this.withSession((session) => {
      try {
        this.find(session, ref, keyClass).setAttribute(change);
        return { refused: false };
      } catch (err) {
        return { refused: true, reason: reasonOf(err) };
      }
    });
  }

  /** Fault injection: C_CloseSession on every session the store's pool lends out, behind its back. */
  closeSessionsUnderneath(): number {
    let closed = 0;
    for (const session of this.store.sessionsForFaultInjection()) {
      try {
        session.close();
        closed++;
      } catch {
        // closed already
      }
    }
    return closed;
  }

  /** Fault injection: C_Logout of the token (per application: every session of this process is logged out). */
  logoutUnderneath(): void {
    this.store.sessionsForFaultInjection()[0]!.logout();
  }

  /**
   * A key pair as fleetpki made them before the trusted-wrap rule (sensitive, extractable, wrappable
   * under any key): reproduces an old deployment for the migration's tests and drills. Never used to
   * make a key that signs anything.
   */
  generateLegacySigningKey(label: string): { id: Buffer } {
    return this.withSession((session) => {
      const id = randomBytes(8);
      session.generateKeyPair(
        graphene.KeyGenMechanism.EC,
        { keyType: graphene.KeyType.EC, token: true, private: false, verify: true, paramsEC: P256_EC_PARAMS, label, id },
        { keyType: graphene.KeyType.EC, token: true, private: true, sign: true, sensitive: true, extractable: true, label, id },
      );
      return { id };
    });
  }
}
