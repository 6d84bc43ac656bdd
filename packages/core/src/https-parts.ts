// The issuer API and the status responder over HTTPS (issue 34): each server's material as the
// configuration names it, and how fleetpki's own processes reach these parts (the other site's API, a
// drill's probes, the CLI): over https, checked against the configured CA bundle, or not at all. There is
// no fallback to http and no switch that stops checking; a certificate the bundle does not vouch for is a
// <PART>_TLS_UNTRUSTED error naming the URL and the bundle.
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { FleetError } from './errors.js';
import type { FleetConfig } from './config.js';
import { isUntrustedCertificateCode } from './tls-trust.js';

export type HttpsPart = 'api' | 'status' | 'patroni';
const PARTS: Readonly<Record<HttpsPart, { readonly what: string; readonly code: string }>> = {
  api: { what: 'the issuer API', code: 'API' },
  status: { what: 'the status responder', code: 'STATUS' },
  // A site's Patroni (database.ha patroni): HTTPS with the site's PostgreSQL pair when tls.postgres is set.
  patroni: { what: "a site's Patroni REST API", code: 'PATRONI' },
};

/** A server's pair, and the bundle its clients' certificates are checked against (the API asks for them). */
export interface ServerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

function readMaterial(part: HttpsPart, file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FleetError(`${PARTS[part].code}_TLS_MATERIAL`, `cannot read ${key} (${file}) for ${PARTS[part].what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * tls.<part>'s pair and tls.caBundle, read at start and checked to belong together, or undefined when the
 * configuration names no pair for the part. A key that is not its certificate's stops the start here,
 * named, rather than as a handshake every client fails later.
 */
export function readServerTls(config: Pick<FleetConfig, 'tls'>, part: Exclude<HttpsPart, 'patroni'>): ServerTls | undefined {
  const pair = config.tls.parts[part];
  if (!pair) return undefined;
  const bundle = config.tls.caBundle;
  if (!bundle) throw new FleetError('CONFIG_INVALID', `invalid configuration: tls.${part} needs tls.caBundle (the CA bundle every internal client checks the server against)`);
  const material = { cert: readMaterial(part, pair.cert, `tls.${part}.cert`), key: readMaterial(part, pair.key, `tls.${part}.key`), ca: readMaterial(part, bundle, 'tls.caBundle') };
  try {
    createSecureContext({ cert: material.cert, key: material.key });
  } catch (err) {
    throw new FleetError(`${PARTS[part].code}_TLS_MATERIAL`, `tls.${part}: the key (${pair.key}) does not go with the certificate (${pair.cert}), or one is not PEM: ${(err as Error).message}`);
  }
  return material;
}

/**
 * The bundle fleetpki's own processes check this part's server against: tls.caBundle, except for an API
 * serving what `fleetpki tls server` wrote (no tls.api), whose chain that command wrote beside it. Undefined
 * leaves Node's own CAs, for an https URL of the operator's (a public proxy) with no bundle configured.
 */
export function httpsTrustFile(config: Pick<FleetConfig, 'tls' | 'api'>, part: HttpsPart): string | undefined {
  if (part === 'api' && config.api.tls && !config.tls.parts.api) return join(config.api.tlsDir, 'clients-ca.pem');
  return config.tls.caBundle;
}

/**
 * What a failed request to a part means, when it is about TLS: a certificate the bundle does not vouch
 * for (<PART>_TLS_UNTRUSTED), or a server that does not speak TLS at an https URL (<PART>_TLS_UNAVAILABLE).
 * Undefined for anything else (refused, timed out), which the caller treats as the part being down.
 */
export function httpsPartError(part: HttpsPart, url: string, err: unknown, trustFile: string | undefined): FleetError | undefined {
  // node:https puts the code on the error; fetch (undici) on its cause.
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const source = e.code === undefined && e.cause ? e.cause : e;
  const code = source.code;
  const reason = `${code}: ${source.message ?? ''}`;
  const { what, code: prefix } = PARTS[part];
  const origin = URL.canParse(url) ? new URL(url).origin : url;
  if (isUntrustedCertificateCode(code)) return new FleetError(`${prefix}_TLS_UNTRUSTED`, `${what} at ${origin} presented a certificate that ${trustFile ?? "Node's default CAs"} does not vouch for (${reason}); nothing was sent`, { httpStatus: 502, cause: err });
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') return new FleetError(`${prefix}_TLS_UNAVAILABLE`, `${what} at ${origin} does not speak TLS (${reason}); is tls.${part === 'patroni' ? 'postgres' : part} set on its host?`, { httpStatus: 502, cause: err });
  return undefined;
}

export interface PartAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface PartRequest {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  readonly timeoutMs?: number;
}

/**
 * Requests from one of fleetpki's processes to the issuer API or a status responder, either site's. The
 * bundle is read once per part, on first use.
 */
export class InternalHttps {
  private readonly trust = new Map<HttpsPart, Buffer | undefined>();

  constructor(private readonly config: Pick<FleetConfig, 'tls' | 'api'>) {}

  private ca(part: HttpsPart): Buffer | undefined {
    if (!this.trust.has(part)) {
      const file = httpsTrustFile(this.config, part);
      this.trust.set(part, file === undefined ? undefined : readMaterial(part, file, part === 'api' && file !== this.config.tls.caBundle ? 'the API server chain (fleetpki tls server)' : 'tls.caBundle'));
    }
    return this.trust.get(part);
  }

  async request(part: HttpsPart, url: string, init: PartRequest = {}): Promise<PartAnswer> {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const ca = secure ? this.ca(part) : undefined;
    // rejectUnauthorized written out: NODE_TLS_REJECT_UNAUTHORIZED=0 in a unit's environment changes only
    // the default, and must not turn these checks off.
    const tls = secure ? { rejectUnauthorized: true, ...(ca ? { ca } : {}) } : {};
    return await new Promise<PartAnswer>((resolve, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(target, { method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers: init.headers ?? {}, ...tls, ...(init.timeoutMs ? { signal: AbortSignal.timeout(init.timeoutMs) } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', (err) => reject(httpsPartError(part, url, err, httpsTrustFile(this.config, part)) ?? err));
      req.end(init.body);
    });
  }

  /** A request whose answer is JSON (a health or readiness check, an API call). */
  async json<T>(part: HttpsPart, url: string, init: PartRequest = {}): Promise<{ status: number; body: T }> {
    const answer = await this.request(part, url, init);
    return { status: answer.status, body: JSON.parse(answer.body.toString('utf8')) as T };
  }
}
