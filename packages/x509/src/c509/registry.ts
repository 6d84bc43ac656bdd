import * as asn1js from 'asn1js';

/**
 * The C509 registries (draft-ietf-cose-cbor-encoded-cert, IANA Considerations), keyed both ways.
 * OIDs are held as the hex of their DER content octets, which is also C509's ~oid (RFC 9090 unwrapped).
 */
export function oidContentHex(dotted: string): string {
  const der = Buffer.from(new asn1js.ObjectIdentifier({ value: dotted }).toBER());
  return der.subarray(2).toString('hex');
}

export class CodeTable {
  private readonly byCode = new Map<number, string>();
  private readonly byKey = new Map<string, number>();
  constructor(readonly name: string, entries: readonly (readonly [number, string])[]) {
    for (const [code, key] of entries) {
      this.byCode.set(code, key);
      this.byKey.set(key, code);
    }
  }
  code(key: string): number | undefined {
    return this.byKey.get(key);
  }
  key(code: number): string | undefined {
    return this.byCode.get(code);
  }
}

const oids = (entries: readonly (readonly [number, string])[]) => entries.map(([code, dotted]) => [code, oidContentHex(dotted)] as const);

/** C509 RDN Attributes. */
export const RDN_ATTRIBUTES = new CodeTable('RDN attribute', oids([
  [0, '1.2.840.113549.1.9.1'], [1, '2.5.4.3'], [2, '2.5.4.4'], [3, '2.5.4.5'], [4, '2.5.4.6'], [5, '2.5.4.7'],
  [6, '2.5.4.8'], [7, '2.5.4.9'], [8, '2.5.4.10'], [9, '2.5.4.11'], [10, '2.5.4.12'], [11, '2.5.4.15'],
  [12, '2.5.4.17'], [13, '2.5.4.42'], [14, '2.5.4.43'], [15, '2.5.4.44'], [16, '2.5.4.46'], [17, '2.5.4.65'],
  [18, '2.5.4.97'], [19, '1.3.6.1.4.1.311.60.2.1.1'], [20, '1.3.6.1.4.1.311.60.2.1.2'], [21, '1.3.6.1.4.1.311.60.2.1.3'],
  [22, '0.9.2342.19200300.100.1.25'], [25, '2.5.4.41'], [26, '2.5.4.20'], [27, '2.5.4.54'],
  [28, '0.9.2342.19200300.100.1.1'], [29, '1.2.840.113549.1.9.2'], [30, '1.2.840.113549.1.9.8'],
]));
/** Attributes whose value is always an IA5String: their int is never negative (draft, issuer). */
export const IA5_ONLY_ATTRIBUTES = new Set([0, 22]);

/** C509 Signature Algorithms: code -> DER AlgorithmIdentifier (hex). */
export const SIGNATURE_ALGORITHMS = new CodeTable('signature algorithm', [
  [-256, '300d06092a864886f70d0101050500'], [-255, '300906072a8648ce3d0401'],
  [0, '300a06082a8648ce3d040302'], [1, '300a06082a8648ce3d040303'], [2, '300a06082a8648ce3d040304'],
  [3, '300a06082b06010505070620'], [4, '300a06082b06010505070621'], [5, '300a06082b06010505070624'],
  [8, '300a06082a811ccf55018375'], [12, '300506032b6570'], [13, '300506032b6571'],
  [14, '300a06082b0601050507061a'], [15, '300a06082b0601050507061b'], [16, '300a06082b0601050507061c'],
  [23, '300d06092a864886f70d01010b0500'], [24, '300d06092a864886f70d01010c0500'], [25, '300d06092a864886f70d01010d0500'],
  [26, '304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120'],
  [27, '304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130'],
  [28, '304106092a864886f70d01010a3034a00f300d06096086480165030402030500a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140'],
  [29, '300a06082b0601050507061e'], [30, '300a06082b0601050507061f'],
]);
/** Signature algorithms whose value is ECDSA-Sig-Value in DER and r || s in C509 (RFC 9053 2.1). */
export const ECDSA_SIGNATURES = new Set([-255, 0, 1, 2, 3, 4, 8]);
export const UNSIGNED_SIGNATURE = 5;

/** C509 Public Key Algorithms: code -> DER AlgorithmIdentifier (hex). */
export const PUBLIC_KEY_ALGORITHMS = new CodeTable('public key algorithm', [
  [0, '300d06092a864886f70d0101010500'],
  [1, '301306072a8648ce3d020106082a8648ce3d030107'], [2, '301006072a8648ce3d020106052b81040022'],
  [3, '301006072a8648ce3d020106052b81040023'], [6, '301306072a8648ce3d020106082a811ccf5501822d'],
  [8, '300506032b656e'], [9, '300506032b656f'], [12, '300506032b6570'], [13, '300506032b6571'],
  [24, '301406072a8648ce3d020106092b2403030208010107'], [25, '301406072a8648ce3d020106092b240303020801010b'],
  [26, '301406072a8648ce3d020106092b240303020801010d'], [27, '301506072a8648ce3d0201060a2a817a01815f65820001'],
]);
export const RSA_PUBLIC_KEY = 0;
/** Weierstrass curves by public key algorithm: OpenSSL's name (for point decompression) and field size. */
export const EC_CURVES: ReadonlyMap<number, { readonly openssl?: string; readonly bytes: number }> = new Map([
  [1, { openssl: 'prime256v1', bytes: 32 }], [2, { openssl: 'secp384r1', bytes: 48 }], [3, { openssl: 'secp521r1', bytes: 66 }],
  [6, { openssl: 'SM2', bytes: 32 }], [24, { openssl: 'brainpoolP256r1', bytes: 32 }], [25, { openssl: 'brainpoolP384r1', bytes: 48 }],
  [26, { openssl: 'brainpoolP512r1', bytes: 64 }], [27, { bytes: 32 }], // FRP256v1: OpenSSL has no such curve
]);

/** C509 Extensions: code -> extnID. */
export const EXTENSIONS = new CodeTable('extension', oids([
  [1, '2.5.29.14'], [2, '2.5.29.15'], [3, '2.5.29.17'], [4, '2.5.29.19'], [5, '2.5.29.31'], [6, '2.5.29.32'],
  [7, '2.5.29.35'], [8, '2.5.29.37'], [9, '1.3.6.1.5.5.7.1.1'], [25, '2.5.29.18'], [26, '2.5.29.30'],
  [27, '2.5.29.33'], [28, '2.5.29.36'], [29, '2.5.29.46'], [30, '2.5.29.54'], [31, '1.3.6.1.5.5.7.1.11'],
  [32, '1.3.6.1.5.5.7.1.7'], [33, '1.3.6.1.5.5.7.1.8'], [34, '1.3.6.1.5.5.7.1.28'], [35, '1.3.6.1.5.5.7.1.29'],
  [36, '1.3.6.1.5.5.7.48.1.5'], [38, '1.3.6.1.5.5.7.1.24'],
]));

export const CERTIFICATE_POLICIES = new CodeTable('certificate policy', oids([
  [0, '2.5.29.32.0'], [1, '2.23.140.1.2.1'], [2, '2.23.140.1.2.2'], [3, '2.23.140.1.2.3'], [4, '2.23.140.1.1'],
  [7, '1.3.6.1.5.5.7.14.2'], [8, '1.3.6.1.5.5.7.14.3'], [24, '2.23.146.1.2.1.0'], [25, '2.23.146.1.2.1.1'],
  [26, '2.23.146.1.2.1.0.0.0.0.0'], [27, '2.23.146.1.2.1.2'], [28, '2.23.146.1.2.1.0.0.0'], [29, '2.23.146.1.2.1.3'],
  [30, '2.23.146.1.2.1.0.0.1.0'], [31, '2.23.146.1.2.1.4'], [32, '2.23.146.1.2.1.0.0.1.1'], [33, '2.23.146.1.2.1.5'],
  [34, '2.23.146.1.2.1.0.0.1.2'], [35, '2.23.146.1.2.1.6'], [36, '2.23.146.1.2.1.0.0.2.0'], [37, '2.23.146.1.2.1.7'],
  [38, '2.23.146.1.2.1.0.0.2.1'],
]));

export const POLICY_QUALIFIERS = new CodeTable('policy qualifier', oids([[1, '1.3.6.1.5.5.7.2.1'], [2, '1.3.6.1.5.5.7.2.2']]));
export const CPS_QUALIFIER = 1;
export const USER_NOTICE_QUALIFIER = 2;

export const INFORMATION_ACCESS = new CodeTable('information access method', oids([
  [1, '1.3.6.1.5.5.7.48.1'], [2, '1.3.6.1.5.5.7.48.2'], [3, '1.3.6.1.5.5.7.48.3'], [5, '1.3.6.1.5.5.7.48.5'],
  [10, '1.3.6.1.5.5.7.48.10'], [11, '1.3.6.1.5.5.7.48.11'], [13, '1.3.6.1.5.5.7.48.13'],
]));

export const EXTENDED_KEY_USAGES = new CodeTable('extended key usage', oids([
  [0, '2.5.29.37.0'], [1, '1.3.6.1.5.5.7.3.1'], [2, '1.3.6.1.5.5.7.3.2'], [3, '1.3.6.1.5.5.7.3.3'], [4, '1.3.6.1.5.5.7.3.4'],
  [8, '1.3.6.1.5.5.7.3.8'], [9, '1.3.6.1.5.5.7.3.9'], [10, '1.3.6.1.5.2.3.4'], [11, '1.3.6.1.5.2.3.5'],
  [12, '1.3.6.1.5.5.7.3.21'], [13, '1.3.6.1.5.5.7.3.22'], [14, '1.3.6.1.5.5.7.3.35'], [15, '1.3.6.1.5.5.7.3.27'],
  [16, '1.3.6.1.5.5.7.3.28'], [17, '1.3.6.1.5.5.7.3.29'], [18, '1.3.6.1.5.5.7.3.32'], [20, '1.3.6.1.4.1.45605.1'],
]));

/** otherName type-ids with their own General Names code (negative) in the registry. */
export const OTHER_NAME = {
  hardwareModuleName: oidContentHex('1.3.6.1.5.5.7.8.4'),
  smtpUtf8Mailbox: oidContentHex('1.3.6.1.5.5.7.8.9'),
  macAddress: oidContentHex('1.3.6.1.5.5.7.8.12'),
} as const;

/** C509 CR Attributes. */
export const CR_ATTRIBUTES = new CodeTable('certification request attribute', oids([
  [0, '1.2.840.113549.1.9.14'], [1, '1.2.840.113549.1.9.7'], [2, '1.3.6.1.4.1.22112.2.1'],
]));
