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
import type { KeyRef } from './key-store.js';
import type { Pkcs11KeyStore } from './pkcs11-key-store.js';

export type ProbeOutcome = { readonly refused: true; readonly reason: string } | { readonly refused: false };

/** A wrap that went through: the attacker's own key (its value known to them) and the blob. */
export type WrapProbeOutcome = { readonly refused: true; readonly reason: string } | { readonly refused: false; readonly attackerKey: Buffer; readonly wrapped: Buffer };

function reasonOf(err: unknown): string {
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
