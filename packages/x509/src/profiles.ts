import { FleetError, type KeyRole } from '@fleetpki/core';
import { OID } from './oids.js';

/**
 * A device certificate profile (PROFILE.md). Each is compiled once into a DER template per issuing CA;
 * the per-device fields are slots in that template.
 */
export interface DeviceProfile {
  readonly id: string;
  readonly description: string;
  /** hwType of the hardwareModuleName SAN (RFC 4108). */
  readonly deviceTypeOid: string;
  /** subjectKeyIdentifier (RFC 5280 4.2.1.2, method 2, 8 bytes); optional in the compact profile. */
  readonly includeSubjectKeyId: boolean;
  /** certificatePolicies, critical, one OID per environment; optional in the compact profile. */
  readonly policyOid?: string;
  /** CRL shard distribution points (URL base set per deployment); the shard is fixed at issuance. */
  readonly crl?: { readonly shards: number };
  /** undefined: notAfter 99991231235959Z (devices without a trusted clock, RFC 5280 4.1.2.5). */
  readonly lifetimeDays?: number;
  /** Largest DER certificate the pre-issuance lint lets through. */
  readonly derBudget: number;
  /** Symmetric device keys (hybrid PKI) delivered beside the certificates; none when absent. */
  readonly hybridKeys?: readonly ('mac' | 'enc')[];
  /**
   * Natively signed C509 (draft-ietf-cose-cbor-encoded-cert, type 2): the HSM signs the CBOR TBS, so
   * the certificate exists only as C509 and the store keeps those bytes. The DER TBS is still built,
   * linted and hashed into the intent: the CBOR is a pure function of it.
   */
  readonly nativeC509?: boolean;
}

export const KEY_USAGE_BIT: Record<KeyRole, number> = {
  // RFC 5280 4.2.1.3: digitalSignature (0), keyAgreement (4)
  digitalSignature: 0,
  keyAgreement: 4,
};

export const DEVICE_PROFILES: Readonly<Record<string, DeviceProfile>> = {
  'smart-meter': {
    id: 'smart-meter',
    description: 'GB-style smart meter device certificate with every optional extension',
    deviceTypeOid: OID.smartMeterDeviceType,
    includeSubjectKeyId: true,
    policyOid: OID.policyTest,
    crl: { shards: 64 },
    derBudget: 480,
    hybridKeys: ['mac', 'enc'],
  },
  'smart-meter-compact': {
    id: 'smart-meter-compact',
    description: 'compact variant: no policies, no SKI, no CRL DP (status by OCSP), certificates only',
    deviceTypeOid: OID.smartMeterDeviceType,
    includeSubjectKeyId: false,
    // Measured: 356-361 bytes. Every field here is mandatory (RFC 5280 AKI, critical SAN with RFC 4108
    // hardwareModuleName, notAfter 9999), so PROFILE.md's "well under 350" is not reachable; see README.
    derBudget: 365,
  },
  'smart-meter-compact-c509': {
    id: 'smart-meter-compact-c509',
    description: 'the compact profile natively signed as C509 (type 2): for meters that parse only CBOR',
    deviceTypeOid: OID.smartMeterDeviceType,
    includeSubjectKeyId: false,
    derBudget: 365,
    nativeC509: true,
  },
};

export const DEFAULT_PROFILE_ID = 'smart-meter';

export function getProfile(id: string): DeviceProfile {
  const profile = DEVICE_PROFILES[id];
  if (!profile) throw new FleetError('PROFILE_UNKNOWN', `unknown certificate profile "${id.slice(0, 40)}"; known: ${Object.keys(DEVICE_PROFILES).join(', ')}`, { httpStatus: 400 });
  return profile;
}

/** Shard names are fixed-width so the CRL DP is a fixed-length slot in the template. */
export function crlShardName(shard: number): string {
  return `s${String(shard).padStart(4, '0')}`;
}

/** e.g. http://127.0.0.1:18090/crl/device-issuing-1/s0042.crl */
export function crlShardUrl(baseUrl: string, caId: string, shard: number): string {
  return `${baseUrl.replace(/\/?$/, '/')}${caId}/${crlShardName(shard)}.crl`;
}
