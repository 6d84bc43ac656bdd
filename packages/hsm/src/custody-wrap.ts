import * as graphene from 'graphene-pk11';
import { CKR, HsmError, pkcs11Code } from './errors.js';
import { DeviceKeyOperations } from './device-keys.js';
import { CUSTODY_KEK_TEMPLATE } from './key-protection.js';
import type { KeyRef, WrappedKey } from './key-store.js';
import { loginAsSecurityOfficer } from './pkcs11-admin.js';
import { findSlot, loadModule, loginWithRetry, releaseModule } from './pkcs11-module.js';
import { collect, findOneKey, protectionOf, readP256PublicKey } from './pkcs11-objects.js';

export interface CustodyWrapRequest {
  readonly tokenLabel: string;
  /** The security officer's PIN (the custodian brings it): only the SO may mark a key trusted. */
  readonly soPin: string;
  /** The token's user PIN: the keys to wrap are private objects. */
  readonly userPin: string;
  /** The AES-256 key-encryption key the custodians' shares rebuild. */
  readonly kek: Uint8Array;
  readonly privateKeys: readonly KeyRef[];
  readonly secretKeys: readonly KeyRef[];
}

export interface CustodyWrapResult {
  readonly privateKeys: readonly WrappedKey[];
  readonly secretKeys: readonly { label: string; id: Buffer; wrapped: Buffer; checkValue: Buffer }[];
}

const RW = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;

/**
 * The custody ceremony's HSM part, whole, in one PKCS#11 application (an HsmProcess of its own, with no
 * other login): the security officer creates the key-encryption key as a session object
 * (CUSTODY_KEK_TEMPLATE) and logs out; the user logs in on the same session, wraps each CA and master
 * key under it, and destroys it. A session object is visible to no other application, so a process
 * holding the user PIN has nothing to copy or change (issue 33: it used to be a token object for the
 * length of the ceremony), and a ceremony killed midway leaves nothing behind: the object ends with its
 * session. A trusted token object already on the token is refused before anything is made.
 */
export async function wrapForCustody(modulePath: string, request: CustodyWrapRequest): Promise<CustodyWrapResult> {
  if (request.kek.length !== 32) throw new HsmError('HSM_OPERATION_FAILED', `a key-encryption key is 32 bytes (AES-256), got ${request.kek.length}`);
  const module = loadModule(modulePath, undefined);
  try {
    const session = findSlot(module, request.tokenLabel, modulePath).open(RW);
    try {
      loginAsSecurityOfficer(session, request.soPin, request.tokenLabel);
      let kek: graphene.SecretKey;
      try {
        refuseTrustedTokenObjects(session, request.tokenLabel);
        kek = session.create({ class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, value: Buffer.from(request.kek), label: 'fleetpki-custody-kek', ...CUSTODY_KEK_TEMPLATE }).toType<graphene.SecretKey>();
      } finally {
        session.logout();
      }
      try {
        await loginWithRetry(session, request.userPin, request.tokenLabel);
        // Again as the user: the SO sees no private objects, and a PIN holder's private copy of an older
        // trusted key keeps CKA_TRUSTED. Token objects only: the ceremony's own KEK is a session object.
        refuseTrustedTokenObjects(session, request.tokenLabel);
        return {
          privateKeys: request.privateKeys.map((ref) => {
            const key = findOneKey(session, graphene.ObjectClass.PRIVATE_KEY, ref, request.tokenLabel);
            const p = protectionOf(key, 'private');
            const publicKeySpki = readP256PublicKey(session, { label: p.label, id: p.id }, request.tokenLabel);
            return { label: p.label, id: p.id, mechanism: 'aes-key-wrap-pad' as const, wrapped: wrap(session, graphene.MechanismEnum.AES_KEY_WRAP_PAD, kek, key, request.tokenLabel, p.label), publicKeySpki };
          }),
          secretKeys: request.secretKeys.map((ref) => {
            const key = findOneKey(session, graphene.ObjectClass.SECRET_KEY, ref, request.tokenLabel).toType<graphene.SecretKey>();
            const p = protectionOf(key, 'secret');
            const checkValue = new DeviceKeyOperations(session).masterCheckValue(key);
            return { label: p.label, id: p.id, wrapped: wrap(session, graphene.MechanismEnum.AES_KEY_WRAP, kek, key, request.tokenLabel, p.label), checkValue };
          }),
        };
      } finally {
        try {
          kek.destroy();
        } finally {
          session.logout();
        }
      }
    } finally {
      session.close();
    }
  } finally {
    releaseModule(modulePath);
  }
}

/** Trusted token objects: none may exist outside a ceremony (listTrustedKeys says why). */
function refuseTrustedTokenObjects(session: graphene.Session, tokenLabel: string): void {
  const trusted = [graphene.ObjectClass.SECRET_KEY, graphene.ObjectClass.PUBLIC_KEY].flatMap((objectClass) => collect(session.find({ class: objectClass, token: true, trusted: true })));
  if (trusted.length === 0) return;
  const labels = trusted.map((o) => `"${String(o.getAttribute({ label: null }).label ?? '')}"`);
  throw new HsmError(
    'HSM_TRUSTED_KEY_PRESENT',
    `token "${tokenLabel}" holds trusted key(s) ${labels.join(', ')} outside a custody ceremony: any holder of the user PIN can wrap the CA keys under such a key; find out who made it, destroy it (\`pnpm fleetpki hsm destroy-trusted-key --label ...\`), and treat the keys as possibly copied`,
  );
}

function wrap(session: graphene.Session, mechanism: graphene.MechanismEnum, kek: graphene.SecretKey, key: graphene.Key, tokenLabel: string, label: string): Buffer {
  try {
    return session.wrapKey(mechanism, kek, key);
  } catch (err) {
    const code = pkcs11Code(err);
    if (code === CKR.KEY_UNEXTRACTABLE) throw new HsmError('HSM_KEY_NOT_EXTRACTABLE', `key "${label}" in token "${tokenLabel}" is not extractable and cannot be cloned`, err);
    if (code === CKR.KEY_NOT_WRAPPABLE) throw new HsmError('HSM_KEY_NOT_EXTRACTABLE', `token "${tokenLabel}" refuses to wrap "${label}" under the ceremony's key-encryption key`, err);
    throw new HsmError('HSM_OPERATION_FAILED', `wrapping "${label}" failed: ${(err as Error).message}`, err);
  }
}
