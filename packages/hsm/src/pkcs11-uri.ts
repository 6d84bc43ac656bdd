import { HsmError } from './errors.js';

/** The parts of an RFC 7512 PKCS#11 URI that fleetpki uses to name a key. */
export interface Pkcs11KeyUri {
  readonly token: string;
  readonly object: string;
  /** CKA_ID: with the label, it names exactly one key (RFC 7512 `id`, percent-encoded bytes). */
  readonly id?: Buffer;
  readonly type?: 'private' | 'public' | 'secret' | 'cert';
  /** Query attribute `pin-source` (RFC 7512 2.3), e.g. `file:/path/to/pin`. */
  readonly pinSource?: string;
  readonly modulePath?: string;
}

/** Parses `pkcs11:token=fleetpki-a;object=device-ca?pin-source=file:/x` (RFC 7512 2.3). */
export function parsePkcs11Uri(uri: string): Pkcs11KeyUri {
  if (!uri.startsWith('pkcs11:')) throw new HsmError('HSM_URI_INVALID', `"${uri}" is not a PKCS#11 URI (must start with pkcs11:)`);
  const [pathPart = '', queryPart = ''] = uri.slice('pkcs11:'.length).split('?', 2);
  const path = attributes(pathPart, ';', uri, ['id']);
  const query = attributes(queryPart, '&', uri);
  const token = path.get('token');
  const object = path.get('object');
  if (!token || !object) throw new HsmError('HSM_URI_INVALID', `PKCS#11 URI "${uri}" must name both token= and object=`);
  const type = path.get('type');
  if (type !== undefined && !['private', 'public', 'secret', 'cert'].includes(type)) throw new HsmError('HSM_URI_INVALID', `PKCS#11 URI "${uri}" has unknown type=${type}`);
  const result: { -readonly [K in keyof Pkcs11KeyUri]: Pkcs11KeyUri[K] } = { token, object };
  const id = path.get('id');
  if (id !== undefined) result.id = Buffer.from(id, 'latin1');
  if (type) result.type = type as Pkcs11KeyUri['type'];
  const pinSource = query.get('pin-source');
  if (pinSource) result.pinSource = pinSource;
  const modulePath = query.get('module-path');
  if (modulePath) result.modulePath = modulePath;
  return result;
}

export function formatPkcs11Uri(key: Pkcs11KeyUri): string {
  const enc = (v: string) => encodeURIComponent(v);
  let uri = `pkcs11:token=${enc(key.token)};object=${enc(key.object)}`;
  if (key.id) uri += `;id=${[...key.id].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`;
  if (key.type) uri += `;type=${key.type}`;
  const query: string[] = [];
  if (key.pinSource) query.push(`pin-source=${enc(key.pinSource)}`);
  if (key.modulePath) query.push(`module-path=${enc(key.modulePath)}`);
  return query.length ? `${uri}?${query.join('&')}` : uri;
}

/** Percent-decoding to bytes (latin1), for binary attributes such as id, which need not be UTF-8. */
function decodeBytes(value: string): string {
  if (/%(?![0-9a-fA-F]{2})/.test(value)) throw new URIError('bad percent-encoding');
  return value.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function attributes(part: string, separator: string, uri: string, binary: readonly string[] = []): Map<string, string> {
  const map = new Map<string, string>();
  if (!part) return map;
  for (const pair of part.split(separator)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new HsmError('HSM_URI_INVALID', `PKCS#11 URI "${uri}" has a malformed attribute "${pair}"`);
    const name = pair.slice(0, eq);
    try {
      map.set(name, binary.includes(name) ? decodeBytes(pair.slice(eq + 1)) : decodeURIComponent(pair.slice(eq + 1)));
    } catch {
      throw new HsmError('HSM_URI_INVALID', `PKCS#11 URI "${uri}" has a bad percent-encoding in "${pair}"`);
    }
  }
  return map;
}
