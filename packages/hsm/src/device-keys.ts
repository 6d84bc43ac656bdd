/**
 * Symmetric device keys (the "hybrid" half of the PKI), as SIM and payment-card issuers run them: each
 * device key is diversified inside the HSM from a versioned master key and leaves only wrapped under a
 * per-batch transport key agreed with the factory. Nothing here ever sees a clear key value.
 *
 * Constructions (named and versioned, so a factory can implement the other side):
 * - Diversification `fleetpki-div-aescbc-v1`: device key = AES-256-CBC-ENCRYPT(master, IV = 0,
 *   D) with CKM_AES_CBC_ENCRYPT_DATA; one 16-byte block D gives an AES-128 key, two blocks AES-256.
 *   D = EUI-64 (8) || role (1) || version (2, big-endian) || "FPKI" (4) || block index (1).
 * - Transport KDF `fleetpki-ecdh-aescbc-v1`: the HSM makes an ephemeral P-256 key pair, derives
 *   Z = x-coordinate of ECDH(ephemeral, factory) as an AES-256 key (CKM_ECDH1_DERIVE, CKD_NULL: all
 *   SoftHSM offers), then KEK = AES-256-CBC-ENCRYPT(Z, IV = 0, SHA-256("fleetpki transport kek v1" ||
 *   context)) with CKM_AES_CBC_ENCRYPT_DATA. Device keys are wrapped under the KEK with
 *   CKM_AES_KEY_WRAP (RFC 3394).
 * - Key check value: the first 3 bytes of AES-ECB(key, 16 zero bytes) (the payment-industry KCV).
 */
import { createHash } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { HsmError } from './errors.js';
import { MASTER_KEY_PROTECTION } from './key-protection.js';

export const DIVERSIFICATION = 'fleetpki-div-aescbc-v1';
export const TRANSPORT_KDF = 'fleetpki-ecdh-aescbc-v1';
const TRANSPORT_LABEL = 'fleetpki transport kek v1';
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

export type DeviceKeyRole = 'mac' | 'enc';
const ROLE_CODES: Record<DeviceKeyRole, number> = { mac: 0x01, enc: 0x02 };

/** The diversification data of one device key: `blocks` 16-byte blocks (1: AES-128, 2: AES-256). */
export function diversificationData(eui64: Buffer, role: DeviceKeyRole, version: number, blocks: 1 | 2): Buffer {
  if (eui64.length !== 8) throw new HsmError('HSM_OPERATION_FAILED', 'an EUI-64 is 8 bytes');
  if (!Number.isInteger(version) || version < 1 || version > 0xffff) throw new HsmError('HSM_OPERATION_FAILED', `key version must be 1-65535, got ${version}`);
  const out = Buffer.alloc(16 * blocks);
  for (let b = 0; b < blocks; b++) {
    const block = out.subarray(16 * b, 16 * b + 16);
    eui64.copy(block, 0);
    block[8] = ROLE_CODES[role];
    block.writeUInt16BE(version, 9);
    block.write('FPKI', 11, 'latin1');
    block[15] = b + 1;
  }
  return out;
}

/** The 32-byte input of the transport KDF for a batch context (e.g. the batch id and the ephemeral key). */
export function transportKdfInput(context: Buffer): Buffer {
  return createHash('sha256').update(TRANSPORT_LABEL).update(context).digest();
}

export interface WrappedDeviceKey {
  /** RFC 3394 AES key wrap of the device key under the batch's transport KEK. */
  readonly wrapped: Buffer;
  /** KCV of the device key. */
  readonly kcv: Buffer;
}

const ZERO_IV = Buffer.alloc(16);
/** Fixed diversification input whose derived key's KCV identifies a master key without revealing it. */
const MASTER_PROBE = Buffer.from('fleetpki master check v1', 'latin1').subarray(0, 16);

/** Operations on one session; the callers (Pkcs11KeyStore) hold the session pool. */
export class DeviceKeyOperations {
  constructor(private readonly session: graphene.Session) {}

  /**
   * A master key: AES-256 token object, never readable, good only for deriving device keys; cloneable to
   * the standby's token, and then only under the custody ceremony's trusted key-encryption key.
   */
  generateMasterKey(label: string, id: Buffer): void {
    this.session.generateKey(graphene.KeyGenMechanism.AES, {
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      valueLen: 32,
      token: true,
      private: true,
      label,
      id,
      ...MASTER_KEY_PROTECTION(true),
    });
  }

  /** Derives an AES key from `base` inside the HSM as a sensitive session object (CKM_AES_CBC_ENCRYPT_DATA, IV 0). */
  deriveAes(base: graphene.SecretKey, data: Buffer, attributes: graphene.ITemplate): graphene.SecretKey {
    if (data.length !== 16 && data.length !== 32) throw new HsmError('HSM_OPERATION_FAILED', `derivation data must be 16 or 32 bytes, got ${data.length}`);
    return this.session.deriveKey({ name: 'AES_CBC_ENCRYPT_DATA', params: new graphene.AesCbcEncryptDataParams(ZERO_IV, data) }, base, {
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      valueLen: data.length,
      token: false,
      sensitive: true,
      extractable: true,
      ...attributes,
    }).toType<graphene.SecretKey>();
  }

  /** First 3 bytes of AES-ECB(key, 0^16), computed in the HSM (the key needs CKA_ENCRYPT). */
  kcv(key: graphene.SecretKey): Buffer {
    return this.session.createCipher('AES_ECB', key).once(Buffer.alloc(16), Buffer.alloc(16)).subarray(0, 3);
  }

  /**
   * Ephemeral-static ECDH with the factory's P-256 public key (uncompressed point) and the transport
   * KDF, inside the HSM. Returns the KEK (a session object that can only wrap) and the ephemeral point.
   */
  agreeTransportKey(factoryPoint: Buffer, context: Buffer): { kek: graphene.SecretKey; ephemeralPoint: Buffer } {
    const pair = this.session.generateKeyPair(
      graphene.KeyGenMechanism.EC,
      { keyType: graphene.KeyType.EC, token: false, paramsEC: P256_PARAMS, derive: true },
      { keyType: graphene.KeyType.EC, token: false, private: true, sensitive: true, extractable: false, derive: true },
    );
    try {
      const point = pair.publicKey.getAttribute({ pointEC: null }).pointEC as Buffer;
      const ephemeralPoint = point[0] === 0x04 && point.length === 67 ? point.subarray(2) : point;
      const z = this.session.deriveKey({ name: 'ECDH1_DERIVE', params: new graphene.EcdhParams(graphene.EcKdf.NULL, null as unknown as Buffer, factoryPoint) }, pair.privateKey, {
        class: graphene.ObjectClass.SECRET_KEY,
        keyType: graphene.KeyType.AES,
        valueLen: 32,
        token: false,
        sensitive: true,
        extractable: false,
        derive: true,
      }).toType<graphene.SecretKey>();
      try {
        const kek = this.deriveAes(z, transportKdfInput(context), { wrap: true, extractable: false, encrypt: false, derive: false });
        return { kek, ephemeralPoint: Buffer.from(ephemeralPoint) };
      } finally {
        z.destroy();
      }
    } finally {
      pair.privateKey.destroy();
      pair.publicKey.destroy();
    }
  }

  /** Diversifies one device key from `master`, wraps it under `kek` (RFC 3394) and returns it with its KCV. */
  diversifyAndWrap(master: graphene.SecretKey, kek: graphene.SecretKey, data: Buffer): WrappedDeviceKey {
    const key = this.deriveAes(master, data, { encrypt: true });
    try {
      const kcv = this.kcv(key);
      const wrapped = this.session.wrapKey(graphene.MechanismEnum.AES_KEY_WRAP, kek, key);
      return { wrapped, kcv };
    } finally {
      key.destroy();
    }
  }

  /** Identifies a master key: the KCV of the key it derives from a fixed probe block. */
  masterCheckValue(master: graphene.SecretKey): Buffer {
    const probe = this.deriveAes(master, MASTER_PROBE, { encrypt: true });
    try {
      return this.kcv(probe);
    } finally {
      probe.destroy();
    }
  }

  /** AES-CMAC (CKM_AES_CMAC) of `data` under a diversified device key, computed in the HSM. */
  deviceMac(master: graphene.SecretKey, data: Buffer, message: Buffer): Buffer {
    const key = this.deriveAes(master, data, { sign: true });
    try {
      return this.session.createSign('AES_CMAC', key).once(message);
    } finally {
      key.destroy();
    }
  }

  /** Imports a known key value as an extractable session object: known-answer tests only. */
  private importKnown(value: Buffer, template: graphene.ITemplate): graphene.SecretKey {
    return this.session
      .create({ class: graphene.ObjectClass.SECRET_KEY, token: false, sensitive: false, extractable: true, value, ...template })
      .toType<graphene.SecretKey>();
  }

  /**
   * Known-answer test of the token's wrap mechanisms: wraps `keyMaterial` under `kek` with
   * CKM_AES_KEY_WRAP (RFC 3394) or CKM_AES_KEY_WRAP_PAD (RFC 5649), both imported as session objects.
   */
  knownAnswerWrap(mechanism: 'aes-key-wrap' | 'aes-key-wrap-pad', kek: Buffer, keyMaterial: Buffer): Buffer {
    const kekObject = this.importKnown(kek, { keyType: graphene.KeyType.AES, wrap: true });
    const key = this.importKnown(keyMaterial, { keyType: keyMaterial.length % 8 === 0 && [16, 24, 32].includes(keyMaterial.length) ? graphene.KeyType.AES : graphene.KeyType.GENERIC_SECRET });
    try {
      return this.session.wrapKey(mechanism === 'aes-key-wrap' ? graphene.MechanismEnum.AES_KEY_WRAP : graphene.MechanismEnum.AES_KEY_WRAP_PAD, kekObject, key);
    } finally {
      key.destroy();
      kekObject.destroy();
    }
  }

  /** Known-answer test of the diversification: a known master, the device key wrapped under a known KEK. */
  knownAnswerDiversify(master: Buffer, kek: Buffer, data: Buffer): WrappedDeviceKey {
    const masterObject = this.importKnown(master, { keyType: graphene.KeyType.AES, derive: true });
    const kekObject = this.importKnown(kek, { keyType: graphene.KeyType.AES, wrap: true });
    try {
      return this.diversifyAndWrap(masterObject, kekObject, data);
    } finally {
      kekObject.destroy();
      masterObject.destroy();
    }
  }
}

