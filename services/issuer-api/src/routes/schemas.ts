/** Response schemas shared by routes (also the OpenAPI document's components). */
export const certificateSchema = {
  type: 'object',
  properties: {
    serial: { type: 'string', description: 'hex' },
    eui64: { type: 'string' },
    keyRole: { type: 'string' },
    profile: { type: 'string' },
    status: { type: 'string', enum: ['good', 'revoked'] },
    revocation: { type: 'object', properties: { reason: { type: 'integer' }, revokedAt: { type: 'string' } } },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    crlShard: { type: 'integer' },
    certificate: { type: 'string', description: 'PEM; base64 DER with format=der; base64 C509 (CBOR) with format=c509' },
    format: { type: 'string', enum: ['pem', 'der', 'c509'] },
    reused: { type: 'boolean', description: 'true when the device already had this certificate for this key (a retry; answered 200, nothing signed)' },
    deviceKeys: {
      type: 'object',
      description: 'present when requested: {header, keys} as in a device-key bundle',
      properties: { header: { type: 'object', additionalProperties: true }, keys: { type: 'array', items: { type: 'object', additionalProperties: true } } },
    },
  },
} as const;

export const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
} as const;
