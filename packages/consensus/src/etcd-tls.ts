import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FleetError, SITE_IDS, isUntrustedCertificateCode, type FleetConfig } from '@fleetpki/core';

/**
 * How this process reaches etcd over TLS (issue 34): the members demand a client certificate
 * (--client-cert-auth), checked against tls.caBundle, and this process checks theirs against the same
 * bundle. The certificate says "a host of ours"; which role the process gets still comes from its etcd
 * user and password (etcd-auth.ts), sent over the TLS connection. We keep passwords rather than letting
 * the certificate's CN be the user because one host runs several identities (its agent, the services,
 * the operator's CLI) and each must keep its own least-privilege role without a certificate each.
 * So the client certificate's CN must name no etcd user: etcd would give a caller that sends no password
 * that user's role on the strength of the certificate alone.
 */
export interface EtcdClientTls {
  readonly caFile: string;
  readonly certFile: string;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * The etcd users etcd-auth.ts creates: a client certificate named like one would be that user (etcd
 * takes the CN as the user when no password is sent), so the organisation CA names no certificate so.
 */
export const ETCD_USER_NAMES: readonly string[] = ['root', 'operator', 'service', ...SITE_IDS.map((s) => `agent-${s}`), ...SITE_IDS.map((s) => `patroni-${s}`)];

function hostOf(url: string): string {
  return new URL(url).host;
}

function readMaterial(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FleetError('ETCD_TLS_MATERIAL', `cannot read ${what} (${file}) for etcd: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * This process's TLS material towards etcd, or undefined when etcd is reached over plain http (the
 * loopback default). Every endpoint is https or none is: no plaintext fallback to a member.
 */
export function etcdClientTls(config: FleetConfig): EtcdClientTls | undefined {
  const { caBundle, parts } = config.tls;
  const endpoints = config.consensus.endpoints;
  const secured = endpoints.filter((u) => u.startsWith('https:'));
  const client = parts.etcdClient;
  if (!client) {
    if (secured.length > 0) throw new FleetError('ETCD_TLS_CONFIG', `etcd at ${hostOf(secured[0]!)} is reached over https but tls.etcdClient (this host's client certificate) is not set`);
    return undefined;
  }
  const plain = endpoints.find((u) => !u.startsWith('https:'));
  if (plain) throw new FleetError('ETCD_TLS_CONFIG', `tls.etcdClient is set but etcd at ${hostOf(plain)} is reached over ${new URL(plain).protocol}// (no plaintext fallback): make every etcd member URL https://`);
  if (!caBundle) throw new FleetError('ETCD_TLS_CONFIG', 'tls.etcdClient is set but tls.caBundle, the CA etcd is checked against, is not');
  const tls = { caFile: caBundle, certFile: client.cert, ca: readMaterial(caBundle, 'tls.caBundle'), cert: readMaterial(client.cert, 'tls.etcdClient.cert'), key: readMaterial(client.key, 'tls.etcdClient.key') };
  let cn: string | undefined;
  try {
    cn = /^CN=(.*)$/m.exec(new X509Certificate(tls.cert).subject)?.[1];
  } catch (err) {
    throw new FleetError('ETCD_TLS_MATERIAL', `tls.etcdClient.cert (${client.cert}) is not a PEM certificate: ${(err as Error).message}`);
  }
  if (cn !== undefined && ETCD_USER_NAMES.includes(cn)) {
    throw new FleetError('ETCD_TLS_MATERIAL', `tls.etcdClient.cert (${client.cert}) has CN=${cn}, an etcd user: etcd would grant that user's role to anyone holding the certificate without a password`);
  }
  return tls;
}

/** The etcd3 client's options for the material: grpc-js checks etcd's certificate and presents ours. */
export function etcd3Tls(tls: EtcdClientTls | undefined): { credentials?: { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer } } {
  return tls ? { credentials: { rootCertificate: tls.ca, certChain: tls.cert, privateKey: tls.key } } : {};
}

/** etcdctl's flags for the same material (scripts and tests that use the tool anyone with access has). */
export function etcdctlTlsFlags(config: FleetConfig): string[] {
  const client = config.tls.parts.etcdClient;
  if (!client || !config.tls.caBundle) return [];
  return ['--cacert', config.tls.caBundle, '--cert', client.cert, '--key', client.key];
}

// OpenSSL's verdicts on etcd's certificate (Node's err.code): the bundle does not vouch for it.

/**
 * A TLS failure towards etcd as a FleetError naming the member and what is wrong (never key material),
 * or undefined when the failure is not about certificates (a member down is the quorum's business).
 */
export function classifyEtcdTlsError(err: unknown, url: string, tls: EtcdClientTls): FleetError | undefined {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const reason = `${code}: ${(err as Error).message}`;
  if (isUntrustedCertificateCode(code)) return new FleetError('ETCD_TLS_UNTRUSTED', `etcd at ${hostOf(url)} presents a certificate that tls.caBundle (${tls.caFile}) does not trust (${reason})`);
  // A TLS alert from etcd: it checked our certificate against its --trusted-ca-file and said no.
  if (/^ERR_SSL_.*ALERT/.test(code)) return new FleetError('ETCD_TLS_REFUSED', `etcd at ${hostOf(url)} refused this host's client certificate tls.etcdClient (${tls.certFile}) (${reason})`);
  return undefined;
}

/** GET a member's HTTP endpoint (/health) over the same TLS as the etcd3 client; the body as JSON. */
export function etcdHttpGet(url: string, path: string, tls: EtcdClientTls | undefined, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const options = { timeout: timeoutMs, ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}) };
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(`${url}${path}`, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch {
          reject(new Error(`etcd at ${hostOf(url)}${path} answered ${res.statusCode} with no JSON`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`etcd at ${hostOf(url)} did not answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject((tls && classifyEtcdTlsError(err, url, tls)) || err));
    req.end();
  });
}

/**
 * Start-up check: each reachable member accepts our certificate and we trust its own. Throws the first
 * ETCD_TLS_UNTRUSTED / ETCD_TLS_REFUSED; a member that does not answer at all is left to the quorum.
 */
export async function checkEtcdTls(config: FleetConfig, timeoutMs = 2_000): Promise<void> {
  const tls = etcdClientTls(config);
  if (!tls) return;
  const results = await Promise.allSettled(config.consensus.endpoints.map((url) => etcdHttpGet(url, '/health', tls, timeoutMs)));
  for (const r of results) if (r.status === 'rejected' && r.reason instanceof FleetError) throw r.reason;
}
