/** Object identifiers used by the profiles, with where each comes from. */
export const OID = {
  ecPublicKey: '1.2.840.10045.2.1', // RFC 5480 2.1.1
  prime256v1: '1.2.840.10045.3.1.7', // RFC 5480 2.1.1.1
  secp384r1: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112', // RFC 8410
  ecdsaWithSha256: '1.2.840.10045.4.3.2', // RFC 5758 3.2
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  serverAuth: '1.3.6.1.5.5.7.3.1', // RFC 5280 4.2.1.12
  clientAuth: '1.3.6.1.5.5.7.3.2',
  /** id-kp-cmcRA (RFC 6402 2.10): what RFC 9483 3.3 names for a key protecting CMP messages of a PKI management entity. */
  cmcRA: '1.3.6.1.5.5.7.3.28',
  countryName: '2.5.4.6',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  cRLDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extendedKeyUsage: '2.5.29.37',
  hardwareModuleName: '1.3.6.1.5.5.7.8.4', // RFC 4108 5
  extensionRequest: '1.2.840.113549.1.9.14', // RFC 2985
  /**
   * fleetpki's own arc. 1.3.6.1.4.1.65535 is a placeholder private enterprise number: a deployment
   * replaces it with its registered PEN (IANA) before issuing production certificates.
   */
  fleetpkiArc: '1.3.6.1.4.1.65535.1',
  smartMeterDeviceType: '1.3.6.1.4.1.65535.1.1.1',
  policyTest: '1.3.6.1.4.1.65535.1.2.1',
  policyProduction: '1.3.6.1.4.1.65535.1.2.2',
  /** Extended key usage of a site's audit key (no public EKU exists for signing audit checkpoints). */
  auditSigning: '1.3.6.1.4.1.65535.1.3.1',
} as const;
