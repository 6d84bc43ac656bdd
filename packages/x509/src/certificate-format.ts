import { FleetError } from '@fleetpki/core';
import { x509ToC509 } from './c509/certificate.js';
import { toPem } from './der.js';
import type { DeviceProfile } from './profiles.js';

/** How a certificate is handed out: DER (base64 in JSON), PEM, or C509 (base64 CBOR, type 3 or 2). */
export const CERTIFICATE_FORMATS = ['pem', 'der', 'c509'] as const;
export type CertificateFormat = (typeof CERTIFICATE_FORMATS)[number];

export function defaultFormat(profile: DeviceProfile): CertificateFormat {
  return profile.nativeC509 ? 'c509' : 'pem';
}

/**
 * Encodes a stored certificate (DER, or C509 for a natively signed profile) in the asked format.
 * A native C509 certificate has no DER form: its signature covers the CBOR.
 */
export function encodeIssuedCertificate(stored: Buffer, profile: DeviceProfile, format: CertificateFormat = defaultFormat(profile)): string {
  if (profile.nativeC509) {
    if (format !== 'c509') throw new FleetError('CERTIFICATE_FORMAT_UNAVAILABLE', `profile ${profile.id} issues natively signed C509 certificates, which have no ${format.toUpperCase()} form; ask for format c509`, { httpStatus: 400 });
    return stored.toString('base64');
  }
  if (format === 'pem') return toPem(stored);
  if (format === 'c509') return x509ToC509(stored).toString('base64');
  return stored.toString('base64');
}

export function parseCertificateFormat(value: string | undefined, profile: DeviceProfile): CertificateFormat {
  if (value === undefined) return defaultFormat(profile);
  if (!(CERTIFICATE_FORMATS as readonly string[]).includes(value)) throw new FleetError('FORMAT_UNKNOWN', `unknown certificate format "${value.slice(0, 20)}"; known: ${CERTIFICATE_FORMATS.join(', ')}`, { httpStatus: 400 });
  return value as CertificateFormat;
}
