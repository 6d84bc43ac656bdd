import * as graphene from 'graphene-pk11';
import { HsmError } from './errors.js';
import type { KeyProtection, KeyRef } from './key-store.js';
import { p256SpkiFromPoint, unwrapEcPoint } from './ecdsa.js';

export function collect(found: graphene.SessionObjectCollection): graphene.SessionObject[] {
  return Array.from({ length: found.length }, (_, i) => found.items(i));
}

/** Objects of a class with the ref's label (and id, when it has one). */
export function findObjects(session: graphene.Session, objectClass: graphene.ObjectClass, ref: KeyRef): graphene.SessionObject[] {
  return collect(session.find({ class: objectClass, label: ref.label, ...(ref.id ? { id: ref.id } : {}) }));
}

/** The one object of `objectClass` the ref names; none, several with its label, or another id is an error. */
export function findOneKey(session: graphene.Session, objectClass: graphene.ObjectClass, ref: KeyRef, tokenLabel: string): graphene.Key {
  const found = findObjects(session, objectClass, { label: ref.label });
  const kind = objectClass === graphene.ObjectClass.PRIVATE_KEY ? 'private key' : objectClass === graphene.ObjectClass.SECRET_KEY ? 'secret key' : 'public key';
  if (found.length > 1) {
    const ids = found.map((o) => (o.getAttribute({ id: null }).id as Buffer).toString('hex'));
    throw new HsmError('HSM_KEY_AMBIGUOUS', `token "${tokenLabel}" holds ${found.length} objects of class ${kind} labelled "${ref.label}" (CKA_ID ${ids.join(', ')}); a label must name one key`);
  }
  const key = found[0];
  if (!key) throw new HsmError('HSM_KEY_NOT_FOUND', `no ${kind} labelled "${ref.label}" in token "${tokenLabel}"`);
  if (ref.id) {
    const id = key.getAttribute({ id: null }).id as Buffer;
    if (!id.equals(ref.id)) throw new HsmError('HSM_KEY_NOT_FOUND', `the ${kind} labelled "${ref.label}" in token "${tokenLabel}" has CKA_ID ${id.toString('hex')}, not ${ref.id.toString('hex')}: another key than the one recorded`);
  }
  return key.toType<graphene.Key>();
}

/** A key's protection attributes as the token reports them. */
export function protectionOf(key: graphene.SessionObject, keyClass: 'private' | 'secret'): KeyProtection {
  const a = key.getAttribute({ label: null, id: null, sensitive: null, extractable: null, wrapWithTrusted: null, alwaysSensitive: null, neverExtractable: null, private: null, modifiable: null, copyable: null });
  // CKA_TRUSTED belongs to secret and public keys only (PKCS#11 v2.40 4.7); a private key has none.
  const trusted = keyClass === 'secret' ? key.getAttribute({ trusted: null }).trusted === true : false;
  return {
    class: keyClass,
    label: String(a.label ?? ''),
    id: (a.id as Buffer | undefined) ?? Buffer.alloc(0),
    sensitive: a.sensitive === true,
    extractable: a.extractable === true,
    wrapWithTrusted: a.wrapWithTrusted === true,
    alwaysSensitive: a.alwaysSensitive === true,
    neverExtractable: a.neverExtractable === true,
    trusted,
    private: a.private === true,
    // Absent means the PKCS#11 default, true.
    modifiable: a.modifiable !== false,
    copyable: a.copyable !== false,
  };
}

/** The DER SubjectPublicKeyInfo of the P-256 public key object the ref names. */
export function readP256PublicKey(session: graphene.Session, ref: KeyRef, tokenLabel: string): Buffer {
  const point = findOneKey(session, graphene.ObjectClass.PUBLIC_KEY, ref, tokenLabel).getAttribute({ pointEC: null }).pointEC as Buffer;
  return p256SpkiFromPoint(unwrapEcPoint(point));
}
